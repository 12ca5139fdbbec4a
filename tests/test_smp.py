"""Several nodes: held nodes started by remote interrupts, atomics across nodes, NUMA accounting."""

from __future__ import annotations

import pytest
from machine_util import boot, run_to_result

from psyche.machine.machine import Machine, MachineConfig, NodeState
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE


@pytest.mark.parametrize(("nodes", "quantum"), [(1, 1000), (2, 7), (4, 13), (4, 1000), (16, 101)])
def test_atomics_hold_across_nodes(machine_guest, nodes: int, quantum: int) -> None:
    """Small odd quanta split LR/SC pairs between rounds, so other nodes' stores break reservations."""
    machine, monitor = boot(machine_guest["smp"], nodes=nodes, quantum=quantum)
    result = run_to_result(machine, monitor)
    assert result.passed, result.describe()


def test_held_nodes_wait_for_a_remote_interrupt(machine_guest) -> None:
    machine, monitor = boot(machine_guest["smp"], nodes=4)
    assert [n.state for n in machine.nodes] == [NodeState.RUNNING] + [NodeState.HELD] * 3
    machine.run_round()
    assert all(n.state is NodeState.RUNNING for n in machine.nodes)


def test_remote_references_are_counted_per_node(machine_guest) -> None:
    machine, monitor = boot(machine_guest["smp"], nodes=4)
    run_to_result(machine, monitor)
    king, others = machine.nodes[0], machine.nodes[1:]
    assert king.cpu.remote_refs == 0 and king.cpu.remote_fetches == 0
    assert king.cpu.local_refs > 0
    for node in others:
        # Code and the shared counters live in the king's RAM; the stack is local.
        assert node.cpu.remote_fetches > 0
        assert node.cpu.remote_refs > 0
        assert node.cpu.local_refs > 0


def test_remote_references_cost_the_configured_penalty() -> None:
    """A loop of N remote loads on node 1 costs N * (1 + penalty) cycles more than N local ones."""
    for penalty in (0, 7, 20):
        machine = Machine(MachineConfig(nodes=2, remote_penalty=penalty))
        node1 = machine.nodes[1]
        base = node1.ram_base
        # lw a0, 0(a1); j -4  (a1 = address in node 0's RAM)
        program = (0x0005A503).to_bytes(4, "little") + (0xFFDFF06F).to_bytes(4, "little")
        machine.write_phys(base, program)
        node1.cpu.regs[11] = RAM_BASE + 0x1000
        machine.start_node(1, base)
        machine.stop_node(1)
        for _ in range(100):
            machine.step_node(1)
        cpu = node1.cpu
        assert cpu.instret == 100
        assert cpu.remote_refs == 50
        assert cpu.cycles == 100 + 50 * penalty


def _lr_sc_machine() -> Machine:
    """Node 0 runs lr.w a0,(a1); sc.w a2,a0,(a1); node 1 runs sw a3,0(a1) on the same word."""
    machine = Machine(MachineConfig(nodes=2))
    word = RAM_BASE + 0x2000
    n0 = machine.nodes[0].ram_base
    n1 = machine.nodes[1].ram_base + 0x100
    machine.write_phys(n0, (0x1005A52F).to_bytes(4, "little") + (0x18A5A62F).to_bytes(4, "little"))
    machine.write_phys(n1, (0x00D5A023).to_bytes(4, "little"))
    for index, pc in ((0, n0), (1, n1)):
        machine.nodes[index].cpu.regs[11] = word
        machine.nodes[index].cpu.regs[13] = 0x55
        machine.start_node(index, pc)
        machine.stop_node(index)
    return machine


def test_sc_succeeds_without_an_intervening_store() -> None:
    machine = _lr_sc_machine()
    machine.step_node(0)
    machine.step_node(0)
    assert machine.nodes[0].cpu.regs[12] == 0


def test_another_nodes_store_breaks_the_reservation() -> None:
    machine = _lr_sc_machine()
    machine.step_node(0)          # lr.w
    machine.step_node(1)          # node 1: sw to the reserved word
    machine.step_node(0)          # sc.w must fail
    assert machine.nodes[0].cpu.regs[12] == 1
    assert machine.mem.read_word(RAM_BASE + 0x2000) == 0x55


def test_node_ram_map_is_documented_layout() -> None:
    machine = Machine(MachineConfig(nodes=128))
    assert machine.nodes[127].ram_base == RAM_BASE + 127 * NODE_RAM_SIZE
    assert machine.nodes[127].ram_base + NODE_RAM_SIZE <= 0xA000_0000


def test_trace_sees_every_instruction(machine_guest) -> None:
    from psyche.machine.trace import trace

    machine, monitor = boot(machine_guest["smp"], nodes=2)
    machine.stop_node(0)
    steps = []
    taken = trace(machine, 0, 50, steps.append)
    assert taken == 50
    assert [s.instret for s in steps] == list(range(1, 51))
    assert all(a.next_pc == b.pc for a, b in zip(steps, steps[1:], strict=False))
    assert machine.nodes[1].state is NodeState.HELD  # the other node did not move
