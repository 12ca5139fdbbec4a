# Shared set-up for scripts/run, scripts/test and scripts/build: sourced, not run.
# Idempotent: each step checks before it acts, so a second run costs seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; return 1; fi
}

ensure_apt_packages() {
    local missing=()
    command -v gdb-multiarch >/dev/null || missing+=(gdb-multiarch)
    command -v tmux >/dev/null || missing+=(tmux)   # the console's tests drive it as a person would
    # the reference the gdb conformance suite (tests/conformance) compares the mux with
    command -v qemu-system-riscv32 >/dev/null || missing+=(qemu-system-misc)
    [ "${#missing[@]}" = 0 ] && return 0
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

find_python() {
    for candidate in python3.11 python3 python3.12 python3.13; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    log "Python 3.11 or newer is required"; return 1
}

ensure_venv() {
    if [ ! -x "$PY" ]; then
        log "creating $VENV"
        "$(find_python)" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ]; then
        log "installing the project and its dev dependencies (compiles the node CPU)"
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q -e "$ROOT[dev]"
        touch "$stamp"
    fi
}

# Rebuild the compiled node CPU when its sources changed since the last build.
ensure_compiled() {
    if [ "${PSYCHE_PURE:-0}" = 1 ]; then return 0; fi
    if ! "$PY" -c 'import psyche.machine' 2>/dev/null; then
        log "node CPU sources changed: recompiling with mypyc"
        # Without build isolation pip builds with the venv's own tools: make sure they are the
        # ones pyproject.toml's [build-system] asks for (a venv made by an older pip lacks wheel).
        "$PY" -m pip install -q "setuptools>=68" wheel
        "$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    fi
}

ensure_guest_programs() {
    "$PY" -m psyche.guestbuild >/dev/null
}

# Build the Psyche kernel (build/kernel/psyche.elf) when missing or older than its sources.
ensure_kernel() {
    "$PY" -m psyche.kernel.build >/dev/null
}

setup_all() {
    ensure_apt_packages
    ensure_venv
    ensure_compiled
    ensure_guest_programs
    ensure_kernel
}
