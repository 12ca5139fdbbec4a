"""The simulated Psyche machine: RV32 nodes, NUMA memory, switch, devices."""

from psyche.machine import hotpath

hotpath.check()
