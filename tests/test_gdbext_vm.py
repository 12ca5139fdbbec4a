"""`psyche gdb` and the gdb commands for realms, domains, VPs, protected calls and the magic page,
on a live machine with all of them present.

The program `pcall threads 1 4` (psyche/user/progs/pcall.c) builds its world: its own domain A,
a domain D with a VP on node 1, realms S (D's VP and stacks), P (D's private data) and R (the
operations, D its home), and four processes of A calling an operation of R asynchronously. gdb,
started by `psyche gdb --node 1`, stops node 1 where a call is about to be delivered to D's VP
(the third `pcall_deliver`), and every table must show that world as the program made it; the
program then finishes as if nobody had looked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gdb_util import Up, needs_gdb, start_up
from test_kernel_user_gdb import Console

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]

KD, KS, KP, KR, KI, KX = 0xD0D0, 0x5555, 0x9999, 0x7777, 0x1111, 0x3333   # pcall.c's keys
TABLES = ("realms", "domains", "vps", "calls", "magic", "magic 0")


@pytest.fixture(scope="module")
def up(kernel_elf: Path) -> Iterator[Up]:
    machine = start_up(kernel_elf, 3)
    yield machine
    machine.stop()


def psyche_gdb(up: Up, node: int, *commands: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "psyche.cli", "gdb", "--node", str(node), "--gdb-port", str(up.base_port),
            "--kernel", str(up.kernel), "--", "-batch", "-nx", "-ex", "set confirm off"]
    for command in commands:
        args += ["-ex", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def sections(out: str) -> dict[str, str]:
    """gdb's output cut at the `echo @@NAME` markers."""
    parts = re.split(r"^@@(.+)$", out, flags=re.MULTILINE)
    return {name: text.strip("\n") for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def aligned(text: str, titles: list[str], count: int | None = None) -> None:
    """Every row of the table under the header line with `titles` (all the lines after it, or
    `count`) has a cell starting under each (left-aligned) title, after a gap."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if all(f" {t}" in line for t in titles))
    rows = lines[header + 1:] if count is None else lines[header + 1:header + 1 + count]
    assert rows, text
    for title in titles:
        start = lines[header].index(f" {title}") + 1
        for row in rows:
            assert row[start - 2:start] == "  " and row[start] != " ", (title, text)


def test_every_table_shows_the_world_a_program_built(up: Up) -> None:
    console = Console(up.console)
    try:
        console.type("")
        console.wait_for(r"psyche> ")
        commands = ["break pcall_deliver", "ignore 1 2",
                    f"shell printf 'run pcall threads 1 4\\r' > {up.console}", "continue"]
        for table in TABLES:
            commands += [f"echo @@{table}\\n", f"psyche {table}",
                         f"echo @@{table} json\\n", f"psyche {table} -json"]
        commands += ["echo @@end\\n", "ptype struct realm", "delete", "detach"]
        result = psyche_gdb(up, 1, *commands)
        out = result.stdout + result.stderr
        assert "Breakpoint 1, pcall_deliver" in out, out
        got = sections(out)
        data: dict[str, Any] = {t: json.loads(got[f"{t} json"]) for t in TABLES}

        # realms: R's access list as build() set it, D its home; A and D opened it
        realms = {tuple(e["key"] for e in r["acl"]): r for r in data["realms"]["realms"]}
        r = realms[(KR, KI, KX)]
        assert [e["rights"] for e in r["acl"]] == ["rw--o", "---i-", "r-x--"]
        s = realms[(KS,)]
        assert (KP,) in realms                                                # P: D's, A has no key
        domains = {d["id"]: d for d in data["domains"]}
        a_id = next(i for i, d in domains.items() if d["keys"] and KD in d["keys"])
        d_id = r["home"]
        assert d_id != a_id and sorted(r["open_in"]) == sorted([a_id, d_id])
        # domains: the keys each holds, what each opened, where each has a page table
        a, d = domains[a_id], domains[d_id]
        assert {KD, KS, KR, KI} <= set(a["keys"]) and {KS, KP, KX} <= set(d["keys"])
        assert {o["base"]: o["rights"] for o in d["open"]}[r["base"]] == "r-x--"   # KX: read, execute
        assert {o["base"] for o in d["open"]} >= {s["base"], r["base"]}
        assert d["tables_on"] == [1] and 0 in a["tables_on"] and d["vps"] == 1
        assert d["descriptor"] == realms[(KD,)]["base"]                       # A made D with key KD
        assert a["descriptor"] in {x["base"] for x in data["realms"]["realms"]}
        # vps: A's first VP on node 0, D's server VP on node 1 with the calls queued for it
        vps = {v["domain"]: v for v in data["vps"]}
        assert vps[a_id]["node"] == 0 and vps[a_id]["first"]
        server = vps[d_id]
        assert server["node"] == 1 and server["descriptor"] == s["base"]
        # calls: from A's VP to D's, into R, asynchronous for A (the thread package), one chain each
        calls = data["calls"]["calls"]
        assert calls and data["calls"]["made"] >= 2
        for call in calls:
            assert (call["caller_domain"], call["caller_vp"]) == (a_id, vps[a_id]["id"])
            assert (call["callee_domain"], call["callee_vp"]) == (d_id, server["id"])
            assert r["base"] <= call["entry"] < r["base"] + r["size"] and call["async"]
            assert call["chain"] == [call["id"]]
        assert {c["id"] for c in calls if c["state"] == "queued"} <= set(server["calls_in"])
        # magic: node 1 runs D's VP now (pcall_deliver runs on it); node 0's page is node 0's
        magic1, magic0 = data["magic"], data["magic 0"]
        assert (magic1["page_node"], magic1["nnodes"], magic1["vp_id"]) == (1, 3, server["id"])
        assert magic1["domain"] == d["descriptor"] and len(magic1["runq"]) == 3
        assert magic0["page_node"] == 0 and magic0["ticks"] > 0
        assert {s["vp"] for s in magic0["vps"]} <= {v["id"] for v in data["vps"]}

        # the tables people read: aligned columns, one row per item
        aligned(got["realms"], ["base", "end", "frames", "replicated", "home", "open in", "access"])
        # the ops column is there exactly when the kernel's struct realm declares operations: then R's
        # are pcall.c's five, inside R
        assert (" ops " in got["realms"].splitlines()[1]) == ("ops[" in got["end"]), got["realms"]
        assert data["realms"]["has_ops"] == ("ops[" in got["end"])
        if data["realms"]["has_ops"]:
            assert len(r["ops"]) == 5 and all(r["base"] <= op < r["base"] + r["size"] for op in r["ops"])
        aligned(got["domains"], ["descriptor", "devices", "tables on", "links", "keys", "open realms"])
        aligned(got["vps"], ["state", "thread", "pending", "descriptor", "serving", "calls in"])
        aligned(got["calls"], ["call", "chain", "entry", "from dom/vp", "to dom/vp", "state", "mode"])
        aligned(got["magic"], ["field", "value"], count=6)
        # the VP table is the kernel's statistics, refreshed at each tick: when the breakpoint came
        # within the tick the VPs were made in (time moves with the wall clock while gdb holds a
        # node, so a loaded host decides), the page says so instead
        if "virtual processors: none" not in got["magic"]:
            aligned(got["magic"], ["state"])
        assert len(got["vps"].splitlines()) == 1 + len(data["vps"])
        assert len(got["calls"].splitlines()) == 2 + len(calls)
        assert "00007777:rw--o 00001111:---i- 00003333:r-x--" in got["realms"]

        # looking changed nothing: the program ends as it always does
        console.wait_for(r"pcall: threads: 12 calls by 4 processes, 0 wrong", timeout=60)
        console.wait_for(r"pcall: exit 0\n")
    finally:
        console.close()


def test_psyche_gdb_names_the_nodes_a_machine_has(up: Up) -> None:
    result = psyche_gdb(up, 5, "psyche nodes")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    base = up.base_port
    assert result.stderr == (f"psyche gdb: no node 5: the mux at 127.0.0.1:{base} answers, but nothing "
                             f"listens on 127.0.0.1:{base + 5} (it has nodes 0 to 2; node k is on port "
                             f"{base} + k)\n")
