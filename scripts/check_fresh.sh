#!/usr/bin/env bash
# The README's set-up as a new user on Debian runs it: the system Python (externally managed, PEP 668),
# no venv active.  CI runs this with PATH=/usr/sbin:/usr/bin:/sbin:/bin after the test suite:
#
#   env -i HOME="$HOME" PATH=/usr/sbin:/usr/bin:/sbin:/bin bash scripts/check_fresh.sh
#
# It runs scripts/setup.sh (which must make ./.venv), then the README's smoke command verbatim, and
# checks the recording with ffprobe: a video stream, an audio stream and the run's length.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=$(awk '/^```/{f=!f; next} f && /^m2v live .*--record smoke\.mp4$/ {print; exit}' README.md)
[[ -n "$smoke" ]] || { echo "check_fresh: no 'm2v live ... --record smoke.mp4' line in README.md" >&2; exit 1; }
bash scripts/setup.sh
[[ -x .venv/bin/m2v ]] || { echo "check_fresh: setup did not make the project venv .venv" >&2; exit 1; }
source scripts/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "check_fresh: $smoke"
(cd "$tmp" && eval "$smoke")
streams=$(ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$tmp/smoke.mp4" | sort -u | tr '\n' ' ')
length=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/smoke.mp4")
echo "check_fresh: smoke.mp4 streams: $streams length: ${length}s"
[[ "$streams" == "audio video " ]] || { echo "check_fresh: smoke.mp4 lacks a video or an audio stream" >&2; exit 1; }
python3 -c "import sys; d = float(sys.argv[1]); sys.exit(0 if d >= 15 else 'smoke.mp4 is %.1f s, want >= 15' % d)" "$length"
echo "check_fresh: ok"
