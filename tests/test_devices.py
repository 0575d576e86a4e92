import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import live.devices
from core.errors import DeviceError
from live.cli import devices as cli_devices
from live.devices import InputDevice, find_input_device, format_device_table

from test_audio_input import jack_server  # noqa: F401 - shared fixture

ROOT = Path(__file__).resolve().parents[1]

DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC892 Analog (hw:0,0)", "ALSA", 2, 44100.0, False),
    InputDevice(3, "Scarlett 2i2 USB: Audio (hw:1,0)", "ALSA", 2, 48000.0, False),
    InputDevice(7, "pulse", "ALSA", 32, 44100.0, True),
    InputDevice(9, "system", "JACK Audio Connection Kit", 2, 48000.0, False),
]


def test_table_lists_every_field_and_marks_the_default():
    lines = format_device_table(DEVICES).splitlines()
    assert lines[0].split() == ["index", "name", "host", "API", "channels", "default", "rate"]
    scarlett = next(line for line in lines if "Scarlett" in line)
    assert scarlett.split()[0] == "3" and "48000 Hz" in scarlett and "ALSA" in scarlett
    pulse = next(line for line in lines if "pulse" in line)
    assert pulse.startswith("*") and "32" in pulse.split()
    assert sum(line.startswith("*") for line in lines) == 1


@pytest.mark.parametrize("spec, index", [
    (None, None), (3, 3), ("9", 9), ("scarlett", 3), ("SCARLETT usb", 3),
    ("system jack", 9), ("pulse", 7), ("alc892", 0),
])
def test_find_input_device(spec, index):
    assert find_input_device(spec, DEVICES) == index


@pytest.mark.parametrize("spec, message", [
    (5, "device 5 does not exist.*0, 3, 7, 9"),
    ("focusrite", "no audio input device matches 'focusrite'.*Scarlett"),
    ("alsa", "ambiguous.*0: HDA.*3: Scarlett"),
])
def test_find_input_device_errors_name_the_choices(spec, message):
    with pytest.raises(DeviceError, match=message):
        find_input_device(spec, DEVICES)


def test_cli_says_clearly_when_portaudio_finds_nothing(monkeypatch, capsys):
    # Fakes the hardware answer; the real listing is checked on a JACK server below.
    monkeypatch.setattr(live.devices, "list_input_devices", lambda: [])
    monkeypatch.setattr(live.devices, "host_api_names", lambda: ["ALSA", "OSS"])
    assert cli_devices.run(argparse.Namespace(json=False)) == 1
    err = capsys.readouterr().err
    assert "no audio input devices (host APIs: ALSA, OSS)" in err and "--input demo" in err


@pytest.mark.jack
@pytest.mark.slow
def test_m2v_devices_lists_the_jack_server(jack_server):  # noqa: F811
    res = subprocess.run([sys.executable, "-m", "live.cli", "devices"], cwd=ROOT, env=jack_server.env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if "JACK Audio Connection Kit" in line)
    cols = row.split()
    # The dummy server is the only input here, so it is also the default.
    assert cols[:3] == ["*", "0", "system"]
    assert cols[-4:] == ["Kit", "2", "48000", "Hz"]
