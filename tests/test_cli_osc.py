"""``m2v osc send`` and ``m2v osc monitor`` against real sockets."""

import socket
import subprocess
import sys
import time

import pytest

from core.director import Director
from live.cli import main
from live.cli.osc import typed_args
from live.cues import CueInput
from live.osc import OscFeedback, OscListener


def wait_for(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not pred():
        time.sleep(0.005)
    return pred()


@pytest.fixture
def listener():
    cues = CueInput()
    lst = OscListener(cues=cues, port=None)
    lst.start()
    yield lst
    lst.stop()


@pytest.mark.parametrize(
    "args, types, expected",
    [
        (["a red sky", "4.0"], None, [("s", "a red sky"), ("f", 4.0)]),
        (["3"], None, [("i", 3)]),
        (["-2", "-0.5", "1e3"], None, [("i", -2), ("f", -0.5), ("f", 1000.0)]),
        (["T", "F", "nan"], None, [("T", True), ("F", False), ("s", "nan")]),
        (["1999", "2"], "sf", [("s", "1999"), ("f", 2.0)]),
    ],
)
def test_argument_typing(args, types, expected):
    assert typed_args(args, types) == expected


def test_send_drives_the_listener(listener, capsys):
    port = str(listener.port)
    assert main(["osc", "send", "/m2v/lyric", "a red sky", "4", "--port", port]) == 0
    assert main(["osc", "send", "/m2v/freeze", "T", "--port", port]) == 0
    assert "sent /m2v/lyric s:'a red sky' i:4" in capsys.readouterr().out
    assert wait_for(lambda: listener.counters["cues"] == 2)
    d = Director()
    for cue in listener.cues.drain():
        d.on_cue(cue, now_s=1.0)
    assert d.current.text == "a red sky" and d.frozen
    # an int duration is coerced to float seconds: the lyric expires at 1 + 4 s
    assert [s.kind for s in d.tick(5.5)] == ["lyric", "audio"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["osc", "send", "m2v/lyric", "x"], "must start with '/'"),
        (["osc", "send", "/m2v/bank", "x", "--types", "i"], "'x' is not of type 'i'"),
        (["osc", "send", "/m2v/rate", "1", "2", "--types", "f"], "one of 'ifsTF' per argument"),
        (["osc", "send", "/m2v/bank", "1", "--port", "70000"], "--port 70000"),
    ],
)
def test_send_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_monitor_prints_feedback_messages():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "live.cli", "osc", "monitor", "--port", str(port), "--count", "2",
         "--timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith(f"listening on 127.0.0.1:{port}")
        fb = OscFeedback(host="127.0.0.1", port=port)
        fb.send_state(guidance="a red sky", recording=True)
        fb.close()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.splitlines() == ["/m2v/state/guidance 'a red sky'", "/m2v/state/recording 1"]
