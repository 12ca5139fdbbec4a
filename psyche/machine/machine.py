"""The Psyche machine: N nodes, their RAM, the switch between them, and time.

Nodes run one after another in fixed quanta of simulated cycles, always in
node order, so a run is a pure function of the initial state and of host
input, which enters only between rounds.  Nodes waiting in WFI sleep in a
heap keyed by their next timer event and cost no host time until it comes or
another node (or a host line) raises one of their interrupts.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from psyche.machine.blockcpu import make_cpu
from psyche.machine.cpu import STOP_NONE, STOP_REQUESTED, WATCH_IGNORE, Cpu
from psyche.machine.csr import NEVER
from psyche.machine.devices import (
    SRC_CONSOLE_UART,
    SRC_NIC,
    SRC_ONBOARD_UART,
    Clint,
    DeviceBus,
    Doorbell,
    InterruptController,
    NodeDevices,
)
from psyche.machine.elf import ElfImage, write_image
from psyche.machine.hostline import BufferLine, HostLine
from psyche.machine.nic import Nic, Wire, default_mac
from psyche.machine.physmem import MAX_NODES, NODE_RAM_SIZE, RAM_BASE, PhysMem
from psyche.machine.uart import Uart

DEFAULT_QUANTUM = 1000
DEFAULT_REMOTE_PENALTY = 7
TIMEBASE_HZ = 10_000_000  # nominal: one cycle is 100 ns of simulated time


class NodeState(Enum):
    HELD = "held"          # not yet started by a remote interrupt
    RUNNING = "running"
    STOPPED = "stopped"    # stopped by the host (lld) or by a stop condition


@dataclass
class MachineConfig:
    nodes: int = 1
    quantum: int = DEFAULT_QUANTUM
    remote_penalty: int = DEFAULT_REMOTE_PENALTY
    # Like the RISC-V debug spec's dcsr.stoptime: when set, a node's clock stands still while
    # a debugger holds it (the old behaviour); by default it goes on with the machine
    # (docs/debug-semantics.md, "Time while a node is stopped").
    stoptime: bool = False
    # Misaligned loads and stores are performed, as on QEMU and most application-class cores;
    # when set they trap instead (cause 4 or 6), as on many embedded cores (docs/cpu.md).
    trap_misaligned: bool = False
    # Nodes with a network interface (docs/memory-map.md): the king's by default.
    nic_nodes: tuple[int, ...] = (0,)

    def validate(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"node count {self.nodes} is out of range: 1 to {MAX_NODES}")
        if self.quantum < 1:
            raise ValueError(f"quantum {self.quantum} must be at least 1 cycle")
        if self.remote_penalty < 0:
            raise ValueError("remote penalty must not be negative")
        self.nic_nodes = tuple(sorted(set(self.nic_nodes)))
        bad = [k for k in self.nic_nodes if not 0 <= k < self.nodes]
        if bad:
            raise ValueError(f"NIC on node {bad[0]}: this machine has nodes 0 to {self.nodes - 1}")


@dataclass
class Node:
    index: int
    cpu: Cpu
    devices: NodeDevices
    state: NodeState
    stop_reason: int = STOP_NONE
    # Changes at every stop (a stop condition, a stop request, a completed
    # step), so a debugger can tell one stop from the next (lld's stop counter).
    stops: int = 0

    @property
    def ram_base(self) -> int:
        return RAM_BASE + self.index * NODE_RAM_SIZE


# A watch hook is told of an access to a watched page before it happens
# (node, paddr, size, is_write, value written) and answers a WATCH_* action.
WatchHook = Callable[[int, int, int, bool, int], int]


class Machine:
    def __init__(
        self,
        config: MachineConfig,
        console: HostLine | None = None,
        onboard_lines: list[HostLine] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.mem = PhysMem(config.nodes, config.remote_penalty)
        self.time = 0
        self.nodes: list[Node] = []
        self.console_line: HostLine = console if console is not None else BufferLine()
        for index in range(config.nodes):
            line = onboard_lines[index] if onboard_lines else BufferLine()
            self.nodes.append(self._make_node(index, line))
        self.mem.bus = DeviceBus([node.devices for node in self.nodes])
        self.mem.watch_hook = self._watch
        self._watch_hooks: list[WatchHook] = []
        self._active: list[int] = []
        self._sleep_heap: list[tuple[int, int]] = []
        self._sleeping: dict[int, int] = {}
        self._woken: set[int] = set()

    def _make_node(self, index: int, line: HostLine) -> Node:
        cpu = make_cpu(index, self.mem)
        cpu.trap_misaligned = self.config.trap_misaligned
        intc = InterruptController(cpu, lambda: self.kick(index))
        onboard = Uart(line, lambda high: intc.set_level(SRC_ONBOARD_UART, high))
        console = None
        if index == 0:
            console = Uart(self.console_line, lambda high: intc.set_level(SRC_CONSOLE_UART, high))
        nic = None
        if index in self.config.nic_nodes:
            nic = Nic(self.mem, lambda high: intc.set_level(SRC_NIC, high), default_mac(index),
                      clock=lambda: cpu.cycles)
        devices = NodeDevices(
            clint=Clint(cpu),
            intc=intc,
            doorbell=Doorbell(index, self.config.nodes, intc, self._ring, halted=self._halted_word),
            onboard=onboard,
            console=console,
            nic=nic,
        )
        return Node(index, cpu, devices, NodeState.HELD)

    # -- the king node and the others -------------------------------------

    @property
    def king(self) -> Node:
        return self.nodes[0]

    @property
    def console(self) -> Uart:
        uart = self.king.devices.console
        assert uart is not None
        return uart

    def load(self, image: ElfImage) -> None:
        """Write the image into physical memory and start the king node at its entry."""
        for segment in image.segments:
            if not self.mem.range_is_ram(segment.paddr, max(segment.memsz, len(segment.data))):
                raise ValueError(
                    f"{image.path}: segment at {segment.paddr:#x} ({segment.memsz} bytes) "
                    f"lies outside this machine's RAM"
                )
        write_image(image, self.write_phys)
        self.start_node(0, image.entry)

    def start_node(self, index: int, pc: int) -> None:
        node = self.node(index)
        node.cpu.pc = pc & 0xFFFFFFFF
        node.cpu.cycles = max(node.cpu.cycles, self.time)
        node.state = NodeState.RUNNING
        node.stop_reason = STOP_NONE
        self._make_runnable(index)

    def _ring(self, target: int, sender: int, start_pc: int) -> None:
        node = self.nodes[target]
        if node.state is NodeState.HELD:
            # The first remote interrupt to a held node starts it, at the
            # trap vector its ringer chose for it (Figure 3's startup).
            self.start_node(target, start_pc)
            return
        node.devices.doorbell.receive(sender)

    def _halted_word(self, word: int) -> int:
        """The doorbells' HALTED register: bit k of word k/32 set while node k is stopped.

        What a kernel can know of a debugger: that a node is held and cannot answer (the
        restart monitor command says so instead of just "not parked").
        """
        bits = 0
        for node in self.nodes[32 * word:32 * word + 32]:
            if node.state is NodeState.STOPPED:
                bits |= 1 << (node.index % 32)
        return bits

    def node(self, index: int) -> Node:
        if not 0 <= index < len(self.nodes):
            raise IndexError(f"node {index} out of range: this machine has nodes 0 to {len(self.nodes) - 1}")
        return self.nodes[index]

    # -- scheduling -------------------------------------------------------

    def kick(self, index: int) -> None:
        """An interrupt may have become pending at node index: let it run next round."""
        if index in self._sleeping:
            self._woken.add(index)

    def _make_runnable(self, index: int) -> None:
        self._sleeping.pop(index, None)
        self._woken.discard(index)
        if index not in self._active:
            self._active.append(index)
            self._active.sort()

    def _sleep(self, index: int, wake: int) -> None:
        self._active.remove(index)
        self._sleeping[index] = wake
        if wake < NEVER:
            heapq.heappush(self._sleep_heap, (wake, index))

    def _wake_due(self, end: int) -> None:
        heap = self._sleep_heap
        while heap and heap[0][0] < end:
            wake, index = heapq.heappop(heap)
            if self._sleeping.get(index) == wake:
                self._make_runnable(index)
        for index in sorted(self._woken):
            if index in self._sleeping:
                self._make_runnable(index)
        self._woken.clear()

    def next_event(self) -> int:
        """Earliest time at which a sleeping node wakes, or NEVER."""
        heap = self._sleep_heap
        while heap and self._sleeping.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else NEVER

    def has_runnable(self) -> bool:
        return bool(self._active or self._woken)

    def idle(self) -> bool:
        """True when no node can run until the host does something."""
        return not self._active and not self._woken and self.next_event() >= NEVER

    def run_round(self, run_node: Callable[[int, Cpu, int], int] | None = None) -> list[Node]:
        """Run one quantum on every runnable node; returns the nodes that stopped.

        run_node(index, cpu, end) runs a node instead of cpu.run(end) and returns its stop
        reason (reverse execution re-runs a node step by step, or with breakpoints of its own)."""
        quantum = self.config.quantum
        if not self._active and not self._woken:
            event = self.next_event()
            if event >= NEVER:
                return []
            if event >= self.time + quantum:
                self.time = event - event % quantum  # skip idle time, staying on the grid
        end = self.time + quantum
        self._wake_due(end)
        stopped: list[Node] = []
        for index in list(self._active):
            node = self.nodes[index]
            cpu = node.cpu
            if cpu.cycles < self.time:
                cpu.cycles = self.time  # its clock stood still while it slept
            reason = cpu.run(end) if run_node is None else run_node(index, cpu, end)
            if reason != STOP_NONE:
                node.state = NodeState.STOPPED
                node.stop_reason = reason
                node.stops += 1
                self._active.remove(index)
                stopped.append(node)
            elif cpu.waiting:
                self._sleep(index, cpu.next_timer_event())
        self.time = end
        return stopped

    def scheduler_state(self) -> dict[str, list[int]]:
        return {
            "active": list(self._active),
            "sleeping": [x for item in sorted(self._sleeping.items()) for x in item],
            "woken": sorted(self._woken),
        }

    def set_scheduler_state(self, state: dict[str, list[int]]) -> None:
        self._active = list(state["active"])
        pairs = state["sleeping"]
        self._sleeping = dict(zip(pairs[0::2], pairs[1::2], strict=True))
        self._sleep_heap = [(wake, index) for index, wake in self._sleeping.items() if wake < NEVER]
        heapq.heapify(self._sleep_heap)
        self._woken = set(state["woken"])

    def run(self, cycles: int, stop_when: Callable[[], bool] | None = None) -> list[Node]:
        """Run rounds for `cycles` simulated cycles, or until a node stops or stop_when()."""
        target = self.time + cycles
        while self.time < target:
            stopped = self.run_round()
            if stopped or (stop_when is not None and stop_when()):
                return stopped
            if self.idle():
                break
        return []

    def stop_node(self, index: int, reason: int = STOP_REQUESTED) -> None:
        """Stop a node (between rounds) so it can be inspected; others run on."""
        node = self.node(index)
        if node.state is NodeState.RUNNING:
            node.state = NodeState.STOPPED
            node.stop_reason = reason
            node.stops += 1
            if index in self._active:
                self._active.remove(index)
            self._sleeping.pop(index, None)
            self._woken.discard(index)

    def resume_node(self, index: int) -> None:
        node = self.node(index)
        if node.state is NodeState.STOPPED:
            node.state = NodeState.RUNNING
            node.stop_reason = STOP_NONE
            node.cpu.cycles = max(node.cpu.cycles, self.time)
            self._make_runnable(index)

    def step_node(self, index: int, take_interrupts: bool = True) -> int:
        """Execute one instruction on a stopped node; returns the CPU's stop reason.

        A step ends in a new stop (STOP_NONE when nothing else stopped it).  Unless the
        machine's config says stoptime, the node's clock first catches up with machine time,
        which went on while the node was stopped: a stepped loop that waits on `time` ends.
        """
        node = self.node(index)
        if node.state is not NodeState.STOPPED:
            raise RuntimeError(f"node {index} is {node.state.value}: stop it before stepping")
        if not self.config.stoptime and node.cpu.cycles < self.time:
            node.cpu.cycles = self.time
        reason = node.cpu.step(take_interrupts)
        node.stop_reason = reason
        node.stops += 1
        return reason

    def has_stopped(self) -> bool:
        return any(node.state is NodeState.STOPPED for node in self.nodes)

    def advance_time(self, cycles: int) -> int:
        """Let up to `cycles` of simulated time pass while no node can run; returns how many passed.

        For a machine that is idle only because a debugger holds a node: the runner calls this
        with wall time, so the stopped node's clock (which follows machine time at its next step
        or resume, see step_node) goes on.  Time moves only to a quantum boundary, never past the
        round in which a sleeping node wakes (run_round would skip to the same place), and not at
        all while a node is runnable: rounds advance time then.
        """
        if cycles <= 0 or self.has_runnable():
            return 0
        quantum = self.config.quantum
        target = min(self.time + cycles, self.next_event())
        target -= target % quantum
        if target <= self.time:
            return 0
        passed = target - self.time
        self.time = target
        return passed

    # -- memory seen from the host ------------------------------------------

    def read_phys(self, paddr: int, length: int) -> bytes:
        if not self.mem.range_is_ram(paddr, length):
            raise ValueError(f"physical range {paddr:#x}+{length} is not RAM")
        return self.mem.read_bytes(paddr, length)

    def write_phys(self, paddr: int, data: bytes) -> None:
        if not self.mem.range_is_ram(paddr, len(data)):
            raise ValueError(f"physical range {paddr:#x}+{len(data)} is not RAM")
        self.mem.write_bytes(paddr, data, -1)

    def translate(self, index: int, vaddr: int, write: bool = False) -> int | None:
        """Physical address of vaddr under node index's current translation, or None.

        No side effects: no A/D updates, no faults, nothing made present.
        """
        result = self.node(index).cpu.debug_translate(vaddr & 0xFFFFFFFF, 1 if write else 0)
        return result if result >= 0 else None

    # -- watched pages --------------------------------------------------------

    def add_watch_hook(self, hook: WatchHook) -> None:
        self._watch_hooks.append(hook)

    def _watch(self, node: int, paddr: int, size: int, is_write: bool, value: int) -> int:
        """The strongest action any hook asks for (stopping before beats stopping after)."""
        return max((hook(node, paddr, size, is_write, value) for hook in self._watch_hooks),
                   default=WATCH_IGNORE)

    # -- host lines ------------------------------------------------------------

    def poll_host(self) -> None:
        """Take pending host input into the serial lines and NICs (between rounds only)."""
        for node in self.nodes:
            node.devices.onboard.poll_host()
            if node.devices.console is not None:
                node.devices.console.poll_host()
            if node.devices.nic is not None:
                node.devices.nic.poll(self.time)

    def nic(self, index: int) -> Nic:
        nic = self.node(index).devices.nic
        if nic is None:
            raise ValueError(f"node {index} has no network interface (nodes with one: "
                             f"{', '.join(map(str, self.config.nic_nodes)) or 'none'})")
        return nic

    def attach_wire(self, index: int, wire: Wire) -> None:
        """Connect node index's NIC to the host side (between rounds): its link comes up."""
        self.nic(index).attach(wire)

    def wires(self) -> list[Wire]:
        return [node.devices.nic.wire for node in self.nodes if node.devices.nic is not None]
