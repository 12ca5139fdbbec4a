"""Subcommands of the `psyche` command, one module each."""
