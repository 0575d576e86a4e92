#!/usr/bin/env bash
# One-step set-up of m2v on a fresh Debian/Ubuntu machine (also what CI runs).
#
#   bash scripts/setup.sh          # runtime: system libraries, torch, m2v and its models code
#   bash scripts/setup.sh --test   # plus what the test suite uses (jackd2, liblo-tools, Xvfb, ffmpeg, pytest)
#
# torch: an existing torch install is kept (GPU users: install your CUDA build first);
# otherwise M2V_TORCH (default 2.13.0) is installed before anything else, and every
# later step is constrained to that version so no dependency swaps it out.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TEST=0
[[ "${1:-}" == "--test" ]] && TEST=1

apt_pkgs=(libportaudio2 libsndfile1)
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

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==${M2V_TORCH:-2.13.0}"
fi
constraints=$(mktemp)
"$PY" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" >"$constraints"
echo "setup: torch pinned as $(cat "$constraints")"

extras=""
((TEST)) && extras="[test]"
"$PY" -m pip install -q -c "$constraints" -e ".${extras}"
# taming's model modules only: its declared pytorch-lightning is for training.
"$PY" -m pip install -q --no-deps "taming-transformers-rom1504>=0.0.6"
rm -f "$constraints"
command -v pyenv >/dev/null && pyenv rehash || true
"$PY" -c "import core.models, live.cli" && echo "setup: done. Try: m2v --help"
