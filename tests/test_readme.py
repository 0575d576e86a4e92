"""The README's commands work: each one is run here for real, made short by rules.

Commands are every line of README.md's fenced code blocks, and every inline code
span, that starts with ``m2v``, ``python scripts/`` and the like.  Each is one of:

* a synopsis (``m2v live [--input DEVICE|FILE|demo] ...``, ``m2v weights show SET``):
  every ``--flag`` it names must be accepted by that subcommand's parser (``m2v``: the
  argparse tree of ``live.cli.build_parser``, values listed as ``a|b`` must be among the
  flag's choices; scripts: their ``--help``);
* not runnable here (``NOT_HERE``, each with its reason): its ``m2v`` parts must still parse;
* runnable: rewritten by ``REWRITES`` (toy or tiny models, short runs, no window, free
  ports, output into a temporary folder) and run in bash in a temporary folder, which
  must exit 0 and leave ``results/`` alone.

A new README command is picked up without touching this file; if no rule makes it
short and runnable here, its test fails and says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# A command starts with one of these (after VAR=value assignments); `python` only with a script path.
COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:m2v\s|m2v$|python3?\s+scripts/|bash\s|oscsend\s|source\s|sleep\s)")
ASSIGNMENTS = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*")
# A synopsis names placeholders or alternatives instead of values.
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9_](\.\w+)?(\.\.\.)?")  # SET, AUDIO, SONG.wav, OUT.json
ALTERNATIVES = re.compile(r"\S\|\S|[\[{]|\.\.\.")  # a|b, [--flag], {a,b}, repeats

RUN_TIMEOUT_S = 300
LONG_RUNS = r"bench_guidance|bench_render|bench_soak|^m2v (live|render)\b"  # 15-40 s each even when short
SHORT_S = 3  # seconds of every rewritten live run: long enough for each stage to start and see onsets


@dataclass(frozen=True)
class Rule:
    when: str  # regex searched in the simple command (its VAR=value prefix removed)
    find: str  # regex replaced once, by ``repl``
    repl: str  # {tmp}, {repo}, {osc_port} and {monitor_port} are filled in per run
    why: str


# Applied in order to every simple command of a runnable README command (shell syntax
# around them is kept).  Flags appended at the end override earlier ones (argparse: last wins).
REWRITES = (
    Rule(r"^sleep\b", r"^sleep \S+", "sleep 1", "it waits for a long live run to warm up; the rewritten run is short"),
    Rule(r"^wait$", r"^wait$", "wait $!", "a bare `wait` exits 0 even when the background run failed"),
    Rule(r"^m2v live\b", r"--duration \S+", f"--duration {SHORT_S}", "a few seconds run every stage"),
    Rule(r"^m2v live\b(?!.*--duration)", r"$", f" --duration {SHORT_S}", "without --duration it runs until stopped"),
    Rule(r"^m2v live\b(?!.*--headless)", r"$", " --headless", "fullscreen needs a display; this machine has none"),
    Rule(r"^m2v live\b(?!.*--input)", r"$", " --input demo", "the default input is a sound card"),
    Rule(r"^m2v live\b(?!.*--osc-port)", r"$", " --osc-port {osc_port}",
         "a free port: 9000 may be taken, and runs go in parallel"),
    Rule(r"--models\b", r"--models (?!(tiny|toy)\b)\S+", "--models tiny",
         "real weights are a 1.6 GB download; `default` with random weights is full size: seconds a step on CPU"),
    Rule(r"^m2v (live|render)\b(?!.*--models)(?!.*--preset (tiny|toy)\b)", r"$", " --models tiny --size 64",
         "other presets (and show files' songs) name the default weights"),
    Rule(r"^m2v render\b", r"$", " --preview --no-progress", "64 px, a few iterations per segment"),
    Rule(r"^m2v bench\b(?!.*--models)", r"$", " --models tiny",
         "the presets name the default architecture: seconds a step on CPU"),
    Rule(r"^m2v bench\b", r"$", " --size 64 --cutouts 2 --steps 2 --warmup 1 --budget-s 1 --compile off",
         "two timed 64 px steps per preset, no compile (minutes on a CPU)"),
    Rule(r"^m2v osc send\b(?!.*--port)", r"$", " --port {osc_port}", "to the same block's live run, if it has one"),
    Rule(r"^m2v osc monitor\b", r"--port \S+", "--port {monitor_port}", "a free port"),
    Rule(r"^m2v osc monitor\b(?!.*--timeout)", r"$", " --timeout 1", "it listens until Ctrl-C otherwise"),
    Rule(r"^python3? scripts/", r"scripts/", "{repo}/scripts/", "commands run in a temporary folder"),
    # Benchmarks: their own flags for the smallest run, and output into the temporary folder
    # (never over the committed results/).
    Rule(r"scripts/bench_step\.py", r"$", " --size 64 --cutouts 2 --grid-sizes 64 --grid-cutouts 2 --steps 2 "
         "--warmup 1 --min-steps 1 --budget-s 1 --json {tmp}/bench.json", "one 64 px point, two timed steps"),
    Rule(r"scripts/bench_audio\.py", r"$", " --duration 3 --hops 256 --methods energy --snrs 20 --corpus none "
         "--recordings-cache none --out {tmp}/bench.json",
         "3-s signals, one hop, one method, one noise level, no SoundFont corpus, no npm fetch of recordings"),
    Rule(r"scripts/bench_osc\.py", r"$", " --cues 50 --flood 500 --json {tmp}/bench.json", "50 cues, 500 packets"),
    Rule(r"scripts/bench_midi\.py", r"$", " --messages 20 --json {tmp}/bench.json",
         "20 CCs (it starts its own JACK dummy server)"),
    Rule(r"scripts/bench_liveio\.py", r"$", " --seconds 0.02 --out {tmp}/bench.json", "20 ms per measurement"),
    Rule(r"scripts/bench_guidance\.py", r"$", " --sections text --prompts 1 --per-class 1 --json {tmp}/bench.json",
         "one prompt: its smallest run (60 toy steps, about 40 s on a busy 2-core CPU)"),
    Rule(r"scripts/bench_soak\.py", r"$", f" --duration {SHORT_S} --rss-every-s 1 --json {{tmp}}/bench.json",
         "a few seconds of song"),
    Rule(r"scripts/bench_outputs\.py", r"$", " --seconds 0.2 --repeats 1 --out {tmp}/bench.json",
         "0.2 s per measurement, one run of each display case"),
    Rule(r"scripts/bench_smoke\.py", r"$", " --duration 4 --cue-at 2 --json {tmp}/bench.json",
         "4 s of the smoke run, the cue at 2 s"),
    Rule(r"scripts/judge_check\.py", r"$", " --json {tmp}/bench.json", "the whole check: 180 frames, ~20 s"),
    Rule(r"scripts/bench_render\.py", r"$", f" --seconds {SHORT_S} --preview --json {{tmp}}/bench.json",
         "a few seconds of the loop, preview settings"),
)

# Runnable commands that cannot run here; their m2v parts are still parsed.
NOT_HERE = (
    (r"scripts/setup\.sh", "the setup command: installs system packages; CI runs it itself (.ci/run)"),
    (r"scripts/train_toy\.py", "a full training run of the toy set (about 18 min on 2 CPU cores)"),
    (r"^m2v live\b.*--midi\b", "needs a MIDI system (the ALSA sequencer, or a running JACK server); "
     "tests/test_midi_live.py plays m2v live from a controller on a JACK dummy server"),
    (r"scripts/make_onset_corpus\.py", "needs fluidsynth and the FluidR3 GM SoundFont, which the test setup "
     "does not install (the benchmark's corpus only)"),
    (r"scripts/onset_ceiling\.py", "takes the SoundFont corpus apart, which needs fluidsynth and the FluidR3 GM "
     "SoundFont to render (see make_onset_corpus.py)"),
)

# Input files README commands name, made in each run's folder.  A show file is the README's own example.
LYRICS_LRC = "[00:00.50] a red circle\n[00:02.00] blue rings\n"
PRESET_TOML = 'description = "a user preset"\nextends = "club"\n'  # the README's example of a partial preset


@dataclass(frozen=True)
class Command:
    text: str  # as in the README: continuation lines joined, comments removed
    line: int  # README line of its first line

    @property
    def id(self) -> str:
        return f"L{self.line}:{' '.join(self.text.split())[:70]}"


# --- reading the README ------------------------------------------------------------------------


def _scan(text: str):
    """Yield (index, char, quoted) for ``text``, tracking shell quotes."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
            yield i, c, True
        else:
            if c in "'\"":
                quote = c
            yield i, c, quote is not None


def strip_comment(line: str) -> str:
    for i, c, quoted in _scan(line):
        if c == "#" and not quoted and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def split_simple(script: str) -> list[tuple[str, str]]:
    """``a && b & \\n c`` -> [(a, "&&"), (b, "&"), (c, "")]: simple commands and the separator after each."""
    out, start, skip = [], 0, 0
    for i, c, quoted in _scan(script):
        if skip:
            skip -= 1
            continue
        if quoted or c not in "&|;\n":
            continue
        sep = script[i : i + 2] if script[i : i + 2] in ("&&", "||") else c
        skip = len(sep) - 1
        out.append((script[start:i].strip(), sep))
        start = i + len(sep)
    out.append((script[start:].strip(), ""))
    return [(cmd, sep) for cmd, sep in out if cmd]


def readme_commands(text: str) -> list[Command]:
    """Command lines of fenced blocks (a line ending in `&` runs with what follows up to `wait`) and inline
    code spans, in README order."""
    commands, fence, current, group = [], None, None, None
    lines = text.splitlines()
    for n, raw in enumerate(lines, 1):
        if raw.startswith("```"):
            fence = None if fence is not None else raw[3:].strip()
            current = group = None
            continue
        if fence is None or fence not in ("", "bash", "sh", "shell", "console"):
            continue
        line = strip_comment(raw)
        if group is not None:  # inside `cmd &` ... `wait`
            group = Command(f"{group.text}\n{line.strip()}", group.line)
            if re.search(r"(^|[;&]\s*)wait\b", line):
                commands.append(group)
                group = None
            continue
        if COMMAND.match(line.strip()) and not line[:1].isspace():
            current = Command(line.strip(), n)
            if line.endswith("&") and not line.endswith("&&"):
                group, current = current, None
            else:
                commands.append(current)
        elif current is not None and line.strip() and raw[:1].isspace():  # a synopsis' continuation line
            current = Command(f"{current.text} {line.strip()}", current.line)
            commands[-1] = current
        else:
            current = None
    assert group is None, f"README line {group.line}: `&` without a later `wait`"
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for m in re.finditer(r"`([^`]+)`", prose):
        span = " ".join(m.group(1).split())
        if COMMAND.match(span) and not span.startswith(("bash", "source")):
            commands.append(Command(span, prose.count("\n", 0, m.start()) + 1))
    return sorted(commands, key=lambda c: c.line)


def readme_show_file(text: str) -> str:
    """The README's example show file (its ```toml block with songs)."""
    blocks = re.findall(r"^```toml\n(.*?)^```", text, flags=re.S | re.M)
    shows = [b for b in blocks if "[[songs]]" in b]
    assert shows, "README has no ```toml show file example"
    return shows[0]


def is_synopsis(cmd: Command) -> bool:
    if len(cmd.text.split()) == 2 and cmd.text.startswith("m2v "):  # `m2v live` in prose names the command
        return True
    unquoted = "".join(c for _, c, quoted in _scan(cmd.text) if not quoted)
    tokens = shlex.split(cmd.text)
    return bool(ALTERNATIVES.search(unquoted)) or any(PLACEHOLDER.fullmatch(t) for t in tokens)


def not_here(cmd: Command) -> str | None:
    return next((why for pattern, why in NOT_HERE if re.search(pattern, cmd.text)), None)


README_TEXT = README.read_text()
COMMANDS = readme_commands(README_TEXT)
SYNOPSES = [c for c in COMMANDS if is_synopsis(c)]
RUNNABLE = [c for i, c in enumerate(COMMANDS)  # each text once: the README repeats a few
            if not is_synopsis(c) and not not_here(c) and c.text not in {d.text for d in COMMANDS[:i]}]
PARSED = [c for c in COMMANDS if not is_synopsis(c)]


# --- checking flags against the parsers --------------------------------------------------------


def m2v_parser(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)parser that ``m2v WORDS...`` reaches, and the words left after its subcommand path."""
    from live.cli import build_parser

    parser = build_parser()
    while words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


def synopsis_problems(text: str) -> list[str]:
    """What a synopsis names that its parser refuses: unknown flags, listed values outside a flag's choices."""
    tokens = text.replace("[", " ").replace("]", " ").split()
    if tokens[0] != "m2v":
        return script_synopsis_problems(tokens)
    parser, rest = m2v_parser(tokens[1:])
    if parser.prog == "m2v":
        return [f"`m2v {tokens[1] if len(tokens) > 1 else ''}` is no subcommand"]
    options = {s: a for a in parser._actions for s in a.option_strings}  # noqa: SLF001
    problems = []
    for i, tok in enumerate(rest):
        if not tok.startswith("--"):
            continue
        action = options.get(tok)
        if action is None:
            problems.append(f"`{parser.prog}` has no {tok}")
            continue
        value = rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("-") else None
        if action.choices is None or value is None:
            continue
        for alt in value.split("|"):
            if PLACEHOLDER.fullmatch(alt):
                continue
            try:
                alt_value = action.type(alt) if callable(action.type) else alt
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                alt_value = alt
            if alt_value not in action.choices:
                problems.append(f"`{parser.prog} {tok}` refuses {alt!r} (choices: {list(action.choices)})")
    return problems


def script_synopsis_problems(tokens: list[str]) -> list[str]:
    words = ASSIGNMENTS.sub("", " ".join(tokens)).split()
    script = REPO / words[1]
    if not script.is_file():
        return [f"{words[1]} does not exist"]
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          env=run_env())
    if proc.returncode != 0:
        return [f"{words[1]} --help exited {proc.returncode}: {proc.stderr[-500:]}"]
    known = set(re.findall(r"--[\w-]+", proc.stdout))
    return [f"{words[1]} has no {t}" for t in words[2:] if t.startswith("--") and t.split("=")[0] not in known]


def m2v_words(simple: str) -> list[str] | None:
    words = shlex.split(ASSIGNMENTS.sub("", simple))
    return words[1:] if words and words[0] == "m2v" else None


# --- running -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rewrite(cmd: Command, **fill: str) -> str:
    """The runnable script for ``cmd``: every simple command through ``REWRITES``, shell syntax kept."""
    out = []
    for simple, sep in split_simple(cmd.text):
        prefix = ASSIGNMENTS.match(simple).group(0)
        body = simple[len(prefix):]
        for rule in REWRITES:
            if re.search(rule.when, body):
                body = re.sub(rule.find, rule.repl, body, count=1)
        out.append(f"{prefix}{body} {sep}".rstrip())
    return "\n".join(out).format(**fill)


def script_without_rule(cmd: Command) -> str | None:
    """A script this command runs for which no rule sets a small run and a temporary output."""
    for script in re.findall(r"scripts/(\w+\.py)", cmd.text):
        if not any(re.search(r.when, f"scripts/{script}") and "{tmp}" in r.repl for r in REWRITES):
            return script
    return None


def run_env(home: Path | None = None, *, numba_cache: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "M2V_OFFLINE": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
           "PYGAME_HIDE_SUPPORT_PROMPT": "1", "OMP_NUM_THREADS": "1", "M2V_TEST_PYTHON": sys.executable}
    if home is not None:  # a cache of the test's own: never the user's
        env["M2V_HOME"] = str(home)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    return env


def numba_cache_for(folder: Path) -> Path:
    """A numba cache of the run's own, seeded from the session's (conftest.py): parallel runs compiling
    librosa into one cache can crash (librosa #1998), and what earlier tests compiled is reused."""
    cache = folder / "numba-cache"
    session = Path(os.environ.get("NUMBA_CACHE_DIR", ""))
    if session.name and session.is_dir():
        shutil.copytree(session, cache)
    return cache


# `m2v` and `python` are this interpreter: the test checks this checkout, whatever is on PATH.
PRELUDE = """set -e -o pipefail
m2v() { "$M2V_TEST_PYTHON" -m live.cli "$@"; }
python() { "$M2V_TEST_PYTHON" "$@"; }
python3() { "$M2V_TEST_PYTHON" "$@"; }
"""


def make_inputs(folder: Path, text: str) -> None:
    """The .wav, .lrc and .toml files ``text`` names that do not exist: a demo song, lyrics, README examples."""
    import soundfile as sf

    from core.synth import generate_demo_song

    show = readme_show_file(README_TEXT)
    tomls = {"friday.toml": show, "show.toml": show, "my.toml": PRESET_TOML}
    names = set(re.findall(r"[\w.-]+\.(?:wav|lrc|toml)\b", "\n".join([text, *tomls.values()])))
    for name in sorted(n for n in names if "/" not in n and not (folder / n).exists()):
        if name.endswith(".wav"):
            y, _ = generate_demo_song(duration_s=SHORT_S + 1, sr=48_000)
            sf.write(folder / name, y, 48_000)
        elif name.endswith(".lrc"):
            (folder / name).write_text(LYRICS_LRC)
        elif name in tomls:
            (folder / name).write_text(tomls[name])


def results_snapshot() -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in (REPO / "results").glob("*")}


def run_command(cmd: Command, folder: Path, home: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True)
    make_inputs(folder, cmd.text)
    script = rewrite(cmd, tmp=str(folder), repo=str(REPO), osc_port=str(free_port()),
                     monitor_port=str(free_port()))
    if "oscsend" in script and not shutil.which("oscsend"):
        return subprocess.CompletedProcess(script, 127, "", "oscsend is not installed (Debian: liblo-tools)")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", PRELUDE + script], cwd=folder, capture_output=True, text=True,
                          env=run_env(home, numba_cache=numba_cache_for(folder)), timeout=RUN_TIMEOUT_S)
    proc.args = f"{script}\n({time.monotonic() - t0:.0f} s)"
    return proc


@dataclass
class Runs:
    results_before: dict[str, float]  # results/ when the runs started
    futures: dict[str, Future]  # Command.id -> CompletedProcess


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every runnable README command, started at once on a few workers (they are mostly waiting on startup)."""
    root = tmp_path_factory.mktemp("readme")
    before = results_snapshot()
    home = root / "m2v-home"
    # The tiny set is written on first use; once, before parallel runs could write it together.
    subprocess.run([sys.executable, "-m", "live.cli", "weights", "show", "tiny"], env=run_env(home),
                   capture_output=True, timeout=RUN_TIMEOUT_S, check=True)
    workers = max(1, min(4, os.cpu_count() or 1))
    todo = [c for c in RUNNABLE if not script_without_rule(c)]
    todo.sort(key=lambda c: not re.search(LONG_RUNS, c.text))  # the longest first: the pool ends together
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield Runs(before, {c.id: pool.submit(run_command, c, root / f"run{i}", home) for i, c in enumerate(todo)})
    finally:
        pool.shutdown(cancel_futures=True)  # after `pytest -x`: waits for the running ones only


# --- tests -------------------------------------------------------------------------------------


def test_readme_commands_found():
    """The extractor sees the README's commands (guards against it silently finding none)."""
    texts = [c.text for c in COMMANDS]
    assert any(t.startswith("m2v live --preset toy --input sections --headless") for t in texts)
    assert any(c.text.startswith("m2v live [--input") for c in SYNOPSES)
    assert len(RUNNABLE) >= 10 and len(SYNOPSES) >= 5


def test_synopsis_check_catches_a_refused_flag():
    assert synopsis_problems("m2v live [--input DEVICE] [--no-such-flag]") == ["`m2v live` has no --no-such-flag"]
    assert synopsis_problems("m2v render AUDIO [--segments beats|bars]")[0].startswith("`m2v render --segments`")
    assert synopsis_problems("m2v nosuch [--x]") == ["`m2v nosuch` is no subcommand"]
    assert synopsis_problems("m2v weights list [SET...] [--verify]") == []


def test_not_here_entries_are_current():
    """Each NOT_HERE entry matches a README command: the list names only what the README documents."""
    for pattern, why in NOT_HERE:
        assert any(re.search(pattern, c.text) for c in COMMANDS), f"stale NOT_HERE entry {pattern!r} ({why})"


@pytest.mark.parametrize("cmd", SYNOPSES, ids=lambda c: c.id)
def test_synopsis_flags_exist(cmd):
    assert synopsis_problems(cmd.text) == [], f"README line {cmd.line}: {cmd.text}"


@pytest.mark.parametrize("cmd", PARSED, ids=lambda c: c.id)
def test_command_parses(cmd):
    """Every m2v command the README shows is accepted by the parser as written (before any rewrite)."""
    from live.cli import build_parser

    for simple, _ in split_simple(cmd.text):
        words = m2v_words(simple)
        if words is None:
            continue
        try:
            build_parser().parse_args(words)
        except SystemExit as exc:
            pytest.fail(f"README line {cmd.line}: `{simple}` is refused by the parser (exit {exc.code})")


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUNNABLE, ids=lambda c: c.id)
def test_command_runs(cmd, runs):
    script = script_without_rule(cmd)
    assert script is None, (f"README line {cmd.line} runs scripts/{script}, which has no rule in REWRITES to "
                            "run it small with its output in {tmp}; add one, or a NOT_HERE entry with the reason")
    proc = runs.futures[cmd.id].result()
    assert proc.returncode == 0, (f"README line {cmd.line}: {cmd.text}\nran as:\n{proc.args}\nexit {proc.returncode}"
                                  f"\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}")
    changed = sorted(set(results_snapshot().items()) ^ set(runs.results_before.items()))
    assert not changed, f"a README command run by this test wrote into results/: {changed}"
