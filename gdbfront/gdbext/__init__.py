"""gdb's side of gdbfront: psyche.py runs inside gdb (`source` it); nothing here is imported by Python."""
