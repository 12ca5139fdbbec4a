"""The `psyche up` / `psyche mux` start-up banner (issue 12, bug 6).

The banner's example gdb command lines must name one node and that node's port: the UDP line
used to pair node 2's TCP example with node 0's port (`udp:127.0.0.1:3333`).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from mux.server import MuxConfig
from psyche.commands.mux_cmd import attach_help


def _banner(nodes: int, base: int = 3333, udp: bool = True) -> str:
    config = MuxConfig(nodes, base, "127.0.0.1", udp=udp)
    mux = SimpleNamespace(config=config, port_of=lambda node: base + node)
    return attach_help(mux, "psyche.elf")  # type: ignore[arg-type]


@pytest.mark.parametrize(("nodes", "node"), [(1, 0), (2, 1), (4, 2), (16, 2)])
def test_tcp_and_udp_examples_name_the_same_node_and_port(nodes: int, node: int) -> None:
    text = _banner(nodes)
    tcp = re.search(r"attach gdb to node (\d+):.*target remote 127\.0\.0\.1:(\d+)'", text)
    udp = re.search(r"node (\d+) over UDP:.*target remote udp:127\.0\.0\.1:(\d+)'", text)
    assert tcp and udp, text
    assert int(tcp.group(1)) == int(udp.group(1)) == node, text
    assert int(tcp.group(2)) == int(udp.group(2)) == 3333 + node, text


def test_no_udp_line_without_udp() -> None:
    text = _banner(4, udp=False)
    assert "udp" not in text.lower(), text
    assert "node k on tcp 127.0.0.1:3333+k (3333..3336)" in text, text
    assert "target remote 127.0.0.1:3335'" in text, text


@pytest.mark.parametrize(("base", "kernel", "expected"), [
    (3333, None, "psyche gdb --node 2\n"),
    (4000, "/elsewhere/k.elf", "psyche gdb --node 2 --gdb-port 4000 --kernel /elsewhere/k.elf\n"),
])
def test_the_banner_shows_psyche_gdb_for_the_same_node(base: int, kernel: str | None, expected: str) -> None:
    mux = SimpleNamespace(config=MuxConfig(4, base, "127.0.0.1"), port_of=lambda node: base + node)
    text = attach_help(mux, kernel)  # type: ignore[arg-type]
    assert re.search(r"with the Psyche commands: +" + re.escape(expected), text), text


def test_the_banner_shows_the_machine_port_when_there_is_one() -> None:
    config = MuxConfig(4, 3333, "127.0.0.1", machine_port=3332)
    mux = SimpleNamespace(config=config, port_of=lambda node: 3333 + node)
    text = attach_help(mux, "psyche.elf")  # type: ignore[arg-type]
    assert re.search(r"the whole machine: +gdb-multiarch psyche.elf -ex 'target remote 127.0.0.1:3332' "
                     r"+\(node k is thread k \+ 1\)", text), text
    assert "whole machine" not in _banner(4)
