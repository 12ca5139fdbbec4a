"""Runs inside gdb (`gdb -batch -nx -x gdb_driver.py`): one gdb session of a scenario.

The session is described by a JSON file named in $CONFORMANCE_SESSION:

    {"target": "127.0.0.1:PORT", "commands": [...], "watchdog": 6.0}

It connects (`target remote TARGET`), then runs the commands one by one, and
writes the transcript on stdout: each command as `>>> command` followed by
everything gdb printed for it, captured with gdb.execute(to_string=True) so
that stdout and stderr never interleave differently from one run to the next.
A command that fails prints `error: ` and gdb's message, and the session goes
on.  In a command, the word TARGET stands for the target's address, so that a
scenario can attach again (`target remote TARGET`) and its transcript does not
name the port.

A command that has not finished after `watchdog` seconds (a target that never
stops) gets a SIGINT, as a person would press Ctrl-C, and the transcript says
`[watchdog: ...]`: a hang shows in the transcript instead of stalling the suite.

Two functions are there for scenarios, through gdb's `python` command:

    python interrupt_in(0.5)   # Ctrl-C in 0.5 s (for the command that follows)
    python kill_gdb()          # this gdb dies at once (kill -9), connection and all
    python kill_gdb(0.5)       # ... or in 0.5 s, while the next command runs
"""

import json
import os
import signal
import threading

import gdb

session = json.load(open(os.environ["CONFORMANCE_SESSION"]))
target = session["target"]
watchdog_seconds = float(session.get("watchdog", 6.0))


def interrupt_in(seconds):
    threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT)).start()


def kill_gdb(seconds=0):
    if seconds:
        threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return
    gdb.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def run(command):
    gdb.write(f">>> {command}\n")
    fired = []

    def expire():
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(watchdog_seconds, expire)
    timer.start()
    try:
        out = gdb.execute(command.replace("TARGET", target), to_string=True)
    except gdb.error as e:
        out = f"error: {e}\n"
    except KeyboardInterrupt:
        out = "error: interrupted\n"
    finally:
        timer.cancel()
    if fired:
        out += f"[watchdog: no answer within {watchdog_seconds:g} s, sent SIGINT]\n"
    gdb.write(out)
    gdb.flush()


gdb.execute("set confirm off")
gdb.execute("set pagination off")
gdb.execute("set width 0")
gdb.execute("set height 0")
run("target remote TARGET")
for command in session["commands"]:
    run(command)
