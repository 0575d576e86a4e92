# Source me after scripts/setup.sh:  source scripts/env.sh
#
# When setup made the project venv (a PEP 668 system Python, e.g. Debian 12), this activates it,
# so m2v and python3 -m pytest reach the install. Otherwise (an active venv or conda env, pyenv,
# PYTHON=...) m2v is already on PATH and this changes nothing.
_m2v_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" && -f "$_m2v_root/.venv/bin/activate" ]]; then
  # shellcheck disable=SC1091
  source "$_m2v_root/.venv/bin/activate"
fi
unset _m2v_root
if ! command -v m2v >/dev/null; then
  echo "m2v is not installed for this shell's Python: run 'bash scripts/setup.sh' first" >&2
fi
