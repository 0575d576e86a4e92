"""The OSC listener over real UDP sockets on loopback, checked on the director's state."""

import logging
import shutil
import socket
import struct
import subprocess
import time

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from core import events as ev
from core.director import Director
from core.errors import ConfigError
from live.cues import CueInput
from live.osc import OscFeedback, OscListener, as_bool, as_float, as_int, as_str, parse_allow_list, \
    parse_host_port, Rejected


def wait_for(pred, timeout_s=3.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return pred()


def message(address, *args):
    """A datagram with explicit OSC types: args are (type, value) or plain values."""
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, tuple):
            b.add_arg(a[1], a[0])
        else:
            b.add_arg(a)
    return b.build().dgram


class Rig:
    """A listener, a cue input, a director, and a sender socket."""

    def __init__(self, **kwargs):
        self.cues = CueInput()
        self.listener = OscListener(cues=self.cues, port=None, **kwargs)
        self.listener.start()
        self.director = Director(refractory_s=0.0, min_scene_s=0.0,
                                 bank=[("neon city", 1.0), ("deep forest", 0.5)])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.now_s = 0.0

    def send_raw(self, dgram):
        self.sock.sendto(dgram, ("127.0.0.1", self.listener.port))

    def send(self, address, *args, expect_cue=True):
        """Send one message, wait until the listener handled it, apply cues to the director."""
        before = self.listener.counters["handled"]
        self.send_raw(message(address, *args))
        assert wait_for(lambda: self.listener.counters["handled"] > before)
        self.apply()

    def apply(self):
        self.now_s += 0.1
        for cue in self.cues.drain():
            self.director.on_cue(cue, now_s=self.now_s)
        return self.director.tick(self.now_s)

    def close(self):
        self.listener.stop()
        self.sock.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()
    assert not r.listener.alive and r.listener.error is None


def test_each_address_changes_the_director_state(rig):
    d = rig.director
    rig.send("/m2v/lyric", "a red sky", 4.0)
    assert d.current.kind == "lyric" and d.current.text == "a red sky"
    rig.send("/m2v/clear")
    assert d.current.kind == "audio" and d.held is None
    rig.send("/m2v/prompt", "oil painting", 0.5)
    rig.send("/m2v/prompt", "35mm film")
    assert d.current.prompts == (("oil painting", 0.5), ("35mm film", 1.0))
    rig.send("/m2v/prompt/clear")
    assert d.current.prompts == ()
    rig.send("/m2v/bank", 2)
    assert (d.current.kind, d.current.text, d.current.weight) == ("prompt", "deep forest", 0.5)
    rig.send("/m2v/preset", "club")
    rig.send("/m2v/song", 3)
    assert d.take_app_requests() == [ev.PresetSwitch("club"), ev.SongSelect(3)]
    for address, attr in (("/m2v/freeze", "frozen"), ("/m2v/blackout", "blackout"),
                          ("/m2v/record", "recording")):
        rig.send(address, 1)
        assert getattr(d, attr) is True
        rig.send(address, 0)
        assert getattr(d, attr) is False
    rig.send("/m2v/intensity", 0.8)
    assert d.intensity_override == pytest.approx(0.8)
    rig.send("/m2v/intensity", -1.0)
    assert d.intensity_override is None
    rig.send("/m2v/sensitivity", 0.35)
    assert d.onset_threshold == pytest.approx(0.35)
    rig.send("/m2v/rate", 2.0, 24.0)
    assert d.rate_range == (2.0, 24.0)
    rig.send("/m2v/quantize", "bar")
    assert d.quantize == "bar"
    assert rig.listener.counters["cues"] == 19


@pytest.mark.parametrize(
    "args, expected",
    [
        ((("i", 1),), True), ((("i", 0),), False), ((("i", 7),), True),
        ((("f", 1.0),), True), ((("f", 0.0),), False), ((("f", 0.49),), False),
        ((("s", "1"),), True), ((("s", "0"),), False), ((("s", "on"),), True),
        ((("s", "OFF"),), False), ((("s", "true"),), True), ((("s", "0.0"),), False),
        ((("T", True),), True), ((("F", False),), False),
    ],
)
def test_toggle_coercion_table_over_udp(rig, args, expected):
    rig.director.frozen = not expected
    rig.send("/m2v/freeze", *args)
    assert rig.director.frozen is expected


@pytest.mark.parametrize(
    "args, expected",
    [((("f", 0.25),), 0.25), ((("i", 1),), 1.0), ((("s", "0.5"),), 0.5), ((("T", True),), 1.0),
     ((("F", False),), 0.0), ((("f", 3.0),), 1.0)],  # above 1 is clamped
)
def test_float_coercion_table_over_udp(rig, args, expected):
    rig.send("/m2v/intensity", *args)
    assert rig.director.intensity_override == pytest.approx(expected)


@pytest.mark.parametrize("args", [(("i", 2),), (("f", 2.0),), (("s", "2"),)])
def test_int_coercion_table_over_udp(rig, args):
    rig.send("/m2v/bank", *args)
    assert rig.director.current.text == "deep forest"


@pytest.mark.parametrize(
    "address, args, counter",
    [
        ("/m2v/freeze", (("s", "maybe"),), "wrong_type"),
        ("/m2v/bank", (("f", 1.5),), "wrong_type"),
        ("/m2v/bank", (("T", True),), "wrong_type"),
        ("/m2v/lyric", (), "wrong_type"),
        ("/m2v/lyric", (("T", True),), "wrong_type"),
        ("/m2v/intensity", (("s", "loud"),), "wrong_type"),
        ("/m2v/quantize", (("s", "half"),), "wrong_value"),
        ("/m2v/rate", (("f", 9.0), ("f", 1.0)), "wrong_value"),
        ("/m2v/lyric", (("s", "x" * 300),), "string_too_long"),
        ("/m2v/nothing", (), "unknown_address"),
        ("/m2v/*", (("i", 1),), "pattern_refused"),
    ],
)
def test_bad_messages_are_counted_not_applied(rig, address, args, counter):
    before = (rig.director.current, rig.director.frozen, rig.director.quantize, rig.director.rate_range)
    rig.send(address, *args)
    assert rig.listener.counters[counter] == 1
    assert rig.listener.counters["cues"] == 0 and len(rig.cues) == 0
    assert (rig.director.current, rig.director.frozen, rig.director.quantize,
            rig.director.rate_range) == before
    assert rig.listener.alive


def test_grandma3_prefixed_message_works(rig):
    rig.send("/gma3/m2v/lyric", "from the desk")
    assert rig.director.current.text == "from the desk"
    rig.send("/gma3/m2v/blackout", ("i", 1))
    assert rig.director.blackout


def test_custom_prefixes():
    r = Rig(prefix="/show", extra_prefixes=("/desk1",))
    try:
        r.send("/desk1/show/lyric", "custom")
        assert r.director.current.text == "custom"
        r.send("/m2v/lyric", "default prefix is not mine")
        assert r.listener.counters["unknown_address"] == 1
    finally:
        r.close()
    with pytest.raises(ConfigError, match="'show'"):
        OscListener(cues=CueInput(), port=None, prefix="show")


def test_bundles_are_handled_including_nested(rig):
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(_built("/m2v/freeze", 1))
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(_built("/m2v/lyric", "bundled words"))
    outer.add_content(inner.build())
    rig.send_raw(outer.build().dgram)
    assert wait_for(lambda: rig.listener.counters["cues"] == 2)
    rig.apply()
    assert rig.director.current.text == "bundled words" and rig.director.frozen


def _built(address, *args):
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build()


def test_allow_list_drops_other_senders():
    r = Rig(allow="127.0.0.1/32")
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        other.bind(("127.0.0.2", 0))
        other.sendto(message("/m2v/lyric", "intruder"), ("127.0.0.1", r.listener.port))
        assert wait_for(lambda: r.listener.counters["not_allowed"] == 1)
        r.apply()
        assert r.director.current.text is None
        r.send("/m2v/lyric", "the desk")  # from 127.0.0.1
        assert r.director.current.text == "the desk"
        assert r.listener.counters["not_allowed"] == 1
    finally:
        other.close()
        r.close()


def test_allow_list_parsing():
    nets = parse_allow_list("192.168.1.0/24, 10.0.0.5")
    assert [str(n) for n in nets] == ["192.168.1.0/24", "10.0.0.5/32"]
    assert parse_allow_list("") is None
    with pytest.raises(ConfigError, match="'192.168.1'"):
        parse_allow_list("192.168.1")


def test_host_port_parsing():
    assert parse_host_port("192.168.1.20:9001") == ("192.168.1.20", 9001)
    assert parse_host_port("[::1]:7000") == ("::1", 7000)
    assert parse_host_port("desk", default_port=9001) == ("desk", 9001)
    with pytest.raises(ConfigError, match="'desk:99999'"):
        parse_host_port("desk:99999")


def _fuzz_datagrams(rng, n):
    valid = [message("/m2v/lyric", "words", 2.0), message("/m2v/freeze", ("i", 1)),
             message("/m2v/rate", 1.0, 2.0), _bundle_dgram()]
    for k in range(n):
        kind = k % 4
        if kind == 0:  # random bytes
            yield rng.bytes(int(rng.integers(0, 200)))
        elif kind == 1:  # a valid message, truncated
            v = valid[int(rng.integers(len(valid)))]
            yield v[: int(rng.integers(0, len(v)))]
        elif kind == 2:  # a valid message with a few bytes flipped
            v = bytearray(valid[int(rng.integers(len(valid)))])
            for _ in range(int(rng.integers(1, 4))):
                v[int(rng.integers(len(v)))] = int(rng.integers(256))
            yield bytes(v)
        else:  # structured lies: huge bundle sizes, odd tags, NUL-less strings
            yield rng.choice([
                b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 2**31 - 1) + b"/m2v",
                b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4),
                b"/m2v/lyric\x00\x00,Q\x00\x00",
                b"/m2v/lyric\x00\x00,s\x00\x00abcd",
                b"/m2v/freeze\x00,i\x00\x00\x00\x01",
                b"#bundle\x00" * 10,
            ])


def _bundle_dgram():
    b = OscBundleBuilder(IMMEDIATELY)
    b.add_content(_built("/m2v/blackout", 1))
    return b.build().dgram


@pytest.mark.slow
def test_ten_thousand_malformed_datagrams_then_a_valid_cue(rng, caplog):
    r = Rig(max_rate_hz=1e6, burst=1e6)
    try:
        with caplog.at_level(logging.WARNING, logger="live.osc"):
            for dgram in _fuzz_datagrams(rng, 10_000):
                r.sock.sendto(dgram, ("127.0.0.1", r.listener.port))
            # let the listener catch up (the kernel may drop some of the burst)
            last = -1
            while r.listener.counters["handled"] != last:
                last = r.listener.counters["handled"]
                time.sleep(0.2)
            r.apply()
            r.send("/m2v/lyric", "after the storm")
        assert r.listener.alive and r.listener.error is None
        assert r.director.current.text == "after the storm"
        c = r.listener.counters
        assert c["packets"] > 5000 and c["malformed"] > 1000
        # logged once per kind, however many came
        assert sum("OSC malformed" in m for m in caplog.messages) == 1
    finally:
        r.close()


def test_rate_limit_drops_a_flood():
    r = Rig(max_rate_hz=1.0, burst=5)
    try:
        for i in range(50):
            r.send_raw(message("/m2v/bank", ("i", 1)))
        assert wait_for(lambda: r.listener.counters["handled"] == 50)
        assert 5 <= r.listener.counters["cues"] <= 6  # the burst, plus 1/s refill at most
        assert r.listener.counters["rate_limited"] == 50 - r.listener.counters["cues"]
    finally:
        r.close()


def test_eos_cue_output_triggers_lyrics_from_the_table():
    r = Rig(eos_cues={"1/5": "a red sky", "Chorus": "the sea at night", "1/9": ""})
    try:
        r.send("/eos/out/active/cue/1/5", 0.0)
        assert r.director.current.text == "a red sky"
        r.send("/eos/out/active/cue/1/5", 0.5)  # progress of the same cue: no new cue
        r.send("/eos/out/active/cue/text", "1/5 Verse 3.0 50%")
        assert r.listener.counters["cues"] == 1
        r.send("/eos/out/active/cue/text", "1/7 Chorus 2.5 0%")  # matched by label
        assert r.director.current.text == "the sea at night"
        r.send("/eos/out/active/cue/1/8", 0.0)  # not in the table
        assert r.director.current.text == "the sea at night"
        assert r.listener.counters["eos_unmapped"] == 1
        r.send("/eos/out/active/cue/1/9", 0.0)  # "" in the table: back to audio
        assert r.director.current.kind == "audio"
        r.send("/eos/out/active/channel/1", 50.0)  # the rest of Eos output: ignored quietly
        assert r.listener.counters["eos_ignored"] == 1 and r.listener.counters["unknown_address"] == 0
    finally:
        r.close()


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="needs oscsend (Debian liblo-tools)")
def test_oscsend_from_liblo_drives_a_lyric_cue(rig):
    subprocess.run(["oscsend", "127.0.0.1", str(rig.listener.port), "/m2v/lyric", "sf",
                    "sent by liblo", "2.5"], check=True, timeout=10)
    assert wait_for(lambda: rig.listener.counters["cues"] == 1)
    swaps = rig.apply()
    assert [(s.kind, s.text) for s in swaps] == [("lyric", "sent by liblo")]
    subprocess.run(["oscsend", "127.0.0.1", str(rig.listener.port), "/m2v/freeze", "T"],
                   check=True, timeout=10)
    assert wait_for(lambda: rig.listener.counters["cues"] == 2)
    rig.apply()
    assert rig.director.frozen


def test_port_zero_disables_and_busy_port_is_a_config_error():
    off = OscListener(cues=CueInput(), port=0)
    off.start()
    assert not off.enabled and not off.alive and off.port == 0
    off.stop()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--osc-port"):
            OscListener(cues=CueInput(), port=port)
    finally:
        taken.close()


def test_stop_is_prompt():
    listener = OscListener(cues=CueInput(), port=None)
    listener.start()
    t0 = time.monotonic()
    listener.stop()
    assert time.monotonic() - t0 < 1.0 and not listener.alive


def test_coercion_functions_refuse_what_they_cannot_read():
    assert as_bool(0.5) is True and as_int(3.0) == 3 and as_float("2") == 2.0
    assert as_str(1.5, max_len=10) == "1.5" and as_str(7, max_len=10) == "7"
    for fn, bad in ((as_float, "nan"), (as_float, None), (as_int, 2.5), (as_bool, "perhaps")):
        with pytest.raises(Rejected):
            fn(bad)


def receive(sock, n):
    out = {}
    sock.settimeout(2.0)
    for _ in range(n):
        data, _ = sock.recvfrom(65535)
        m = OscMessage(data)
        out[m.address] = m.params[0]
    return out


def test_feedback_sends_changed_state_to_a_socket():
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.bind(("127.0.0.1", 0))
    fb = OscFeedback(host="127.0.0.1", port=recv.getsockname()[1])
    try:
        n = fb.send_state(guidance="a red sky", kind="lyric", intensity=0.5, onset=1.0,
                          steps_per_s=12.5, recording=True)
        assert n == 6
        got = receive(recv, 6)
        assert got["/m2v/state/guidance"] == "a red sky" and got["/m2v/state/kind"] == "lyric"
        assert got["/m2v/state/intensity"] == pytest.approx(0.5)
        assert got["/m2v/state/onset"] == pytest.approx(1.0)
        assert got["/m2v/state/steps"] == pytest.approx(12.5)
        assert got["/m2v/state/recording"] == 1
        # only what changed goes out again
        assert fb.send_state(guidance="a red sky", intensity=0.5, recording=False) == 1
        assert receive(recv, 1) == {"/m2v/state/recording": 0}
        assert fb.counters["sent"] == 7
    finally:
        fb.close()
        recv.close()


def test_feedback_to_the_listener_of_another_m2v_is_parsed_as_unknown(rig):
    # Feedback pointed back at an m2v listener by mistake must not act as cues.
    fb = OscFeedback(host="127.0.0.1", port=rig.listener.port)
    try:
        fb.send_state(guidance="loop?", recording=True)
        assert wait_for(lambda: rig.listener.counters["unknown_address"] == 2)
        assert rig.listener.counters["cues"] == 0
    finally:
        fb.close()
