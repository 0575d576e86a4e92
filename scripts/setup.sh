#!/usr/bin/env bash
# One-step set-up of m2v on a fresh Debian/Ubuntu machine (also what CI runs).
#
#   bash scripts/setup.sh          # runtime: system libraries, torch, m2v and its models code
#   bash scripts/setup.sh --test   # plus what the test suite uses (jackd2, liblo-tools, Xvfb, ffmpeg, pytest,
#                                  # ray, the midi extra, and the GPL link extra for its one test)
#   source scripts/env.sh          # then, in each new shell: puts m2v on PATH (activates .venv if setup made it)
#
# Which Python it installs into, first match wins:
#   PYTHON=/path/to/python    that interpreter, as given;
#   an active venv or conda env (VIRTUAL_ENV, CONDA_PREFIX);
#   ./.venv when it exists (an earlier run made it);
#   python3, unless it is externally managed (PEP 668: Debian 12, Ubuntu 23.04+ system Python),
#     in which case the project venv ./.venv is made with it and used.
#
# torch: an existing torch install is kept (GPU users: install your CUDA build first);
# otherwise M2V_TORCH (default 2.13.0) is installed before anything else, and every
# later step is constrained to that version so no dependency swaps it out.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[[ "${1:-}" == "--test" ]] && TEST=1
VENV=.venv

externally_managed() {  # PEP 668: the marker file sits in the interpreter's stdlib folder
  "$1" -c 'import os, sys, sysconfig
sys.exit(0 if os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'
}

if [[ -n "${PYTHON:-}" ]]; then
  PY=$PYTHON; WHERE="PYTHON=$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY=$VIRTUAL_ENV/bin/python; WHERE="the active venv $VIRTUAL_ENV"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
  PY=$CONDA_PREFIX/bin/python; WHERE="the active conda env $CONDA_PREFIX"
elif [[ -x $VENV/bin/python ]]; then
  PY=$VENV/bin/python; WHERE="the project venv $PWD/$VENV"
elif command -v python3 >/dev/null && ! externally_managed python3; then
  PY=python3; WHERE="$(command -v python3)"
else
  PY=""; WHERE="a new project venv $PWD/$VENV"  # made below, once python3-venv is installed
fi

apt_pkgs=(libportaudio2 libsndfile1)
[[ -z "$PY" ]] && apt_pkgs+=(python3 python3-venv python3-pip)
((TEST)) && apt_pkgs+=(ffmpeg jackd2 liblo-tools xvfb x11-apps espeak-ng sox)
if command -v apt-get >/dev/null; then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  missing=()
  for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    # jackd2 asks about real-time priority; answer for a non-interactive install.
    echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup: no apt-get; install PortAudio and libsndfile with your package manager" >&2
fi

if [[ -z "$PY" ]]; then
  echo "setup: $(command -v python3) is externally managed (PEP 668); making the project venv $PWD/$VENV"
  python3 -m venv "$VENV" || {
    echo "setup: 'python3 -m venv' failed; install python3-venv (apt-get install python3-venv) and run again" >&2
    exit 1
  }
  PY=$VENV/bin/python
fi
echo "setup: installing into $WHERE ($("$PY" -c 'import sys; print(sys.executable)'))"

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==${M2V_TORCH:-2.13.0}"
fi
constraints=$(mktemp)
"$PY" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" >"$constraints"
echo "setup: torch pinned as $(cat "$constraints")"

extras=""
# The tests drive MIDI ports (mido, python-rtmidi on JACK), two Link peers (aalink: GPL, test-only here)
# and renders on a real local Ray (tests/test_cluster.py).
((TEST)) && extras="[test,midi,link,ray]"
"$PY" -m pip install -q -c "$constraints" -e ".${extras}"
# taming's model modules only: its declared pytorch-lightning is for training.
"$PY" -m pip install -q --no-deps "taming-transformers-rom1504>=0.0.6"
rm -f "$constraints"
command -v pyenv >/dev/null && pyenv rehash || true
"$PY" -c "import core.models, live.cli"
if [[ "$PY" == "$VENV/bin/python" ]]; then
  echo "setup: done. m2v is in $PWD/$VENV: 'source scripts/env.sh' in each new shell puts it on PATH"
else
  echo "setup: done. Try: m2v --help"
fi
