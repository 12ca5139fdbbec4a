"""The interactive mux console that `psyche up` opens: see docs/console.md."""
