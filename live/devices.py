"""Audio input devices as PortAudio sees them, and choosing one by index or name.

Not a stage: small helpers shared by ``m2v devices`` and the audio input stage.
PortAudio lists a host API's devices only while that host is reachable (a JACK
server must be running for "JACK Audio Connection Kit" to appear).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import DeviceError


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_sr: float
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    import sounddevice as sd

    hostapis = sd.query_hostapis()
    try:
        default_in = sd.default.device[0]
        if default_in is None or default_in < 0:
            default_in = sd.query_hostapis(sd.default.hostapi)["default_input_device"]
    except Exception:  # noqa: BLE001 - no default host API on a machine without audio
        default_in = -1
    out = []
    for dev in sd.query_devices():
        if dev["max_input_channels"] <= 0:
            continue
        out.append(InputDevice(
            index=dev["index"],
            name=dev["name"],
            hostapi=hostapis[dev["hostapi"]]["name"],
            channels=dev["max_input_channels"],
            default_sr=float(dev["default_samplerate"]),
            is_default=dev["index"] == default_in,
        ))
    return out


def host_api_names() -> list[str]:
    import sounddevice as sd

    return [h["name"] for h in sd.query_hostapis()]


def format_device_table(devices: list[InputDevice]) -> str:
    """A plain-text table: index, name, host API, channels, default rate; '*' marks the default."""
    rows = [("", "index", "name", "host API", "channels", "default rate")]
    for d in devices:
        rows.append(("*" if d.is_default else "", str(d.index), d.name, d.hostapi,
                     str(d.channels), f"{d.default_sr:.0f} Hz"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def no_devices_message(hostapis: list[str]) -> str:
    apis = ", ".join(hostapis) if hostapis else "none"
    return (
        f"PortAudio found no audio input devices (host APIs: {apis}). "
        "Plug in or enable a sound card, start your JACK/PipeWire server before running, "
        "or rehearse without one: m2v live --input FILE.wav | --input demo"
    )


def find_input_device(spec: int | str | None, devices: list[InputDevice] | None = None) -> int | None:
    """Resolve ``spec`` to a PortAudio device index.

    ``None`` means the system default (returned as None).  An int, or a string of
    digits, is an index.  Any other string is matched case-insensitively against
    ``"name, host API"``; every word must occur (so ``"system jack"`` picks JACK's
    system device).  An exact name match wins over partial ones.

    Raises:
        DeviceError: no such device, not an input, or an ambiguous name.
    """
    if spec is None:
        return None
    devices = list_input_devices() if devices is None else devices
    hint = "run `m2v devices` to list input devices"
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        for d in devices:
            if d.index == index:
                return index
        known = ", ".join(str(d.index) for d in devices) or "none"
        raise DeviceError(f"audio input device {index} does not exist or has no inputs "
                          f"(input devices: {known}); {hint}")
    words = spec.lower().split()
    if not words:
        raise DeviceError(f"empty audio device name {spec!r}; {hint}")
    exact = [d for d in devices if d.name.lower() == spec.lower()]
    if len(exact) == 1:
        return exact[0].index
    matches = [d for d in devices if all(w in f"{d.name}, {d.hostapi}".lower() for w in words)]
    if len(matches) == 1:
        return matches[0].index
    if not matches:
        names = "; ".join(f"{d.index}: {d.name} ({d.hostapi})" for d in devices) or "none"
        raise DeviceError(f"no audio input device matches {spec!r} (input devices: {names}); {hint}")
    names = "; ".join(f"{d.index}: {d.name} ({d.hostapi})" for d in matches)
    raise DeviceError(f"audio device name {spec!r} is ambiguous ({names}); "
                      "give the index or add the host API name, e.g. 'system jack'")


def find_output_device(spec: int | str | None) -> int | None:
    """Resolve an output device (for audible file playback) like :func:`find_input_device`."""
    import sounddevice as sd

    if spec is None:
        return None
    hostapis = sd.query_hostapis()
    outputs = [
        InputDevice(index=d["index"], name=d["name"], hostapi=hostapis[d["hostapi"]]["name"],
                    channels=d["max_output_channels"], default_sr=float(d["default_samplerate"]),
                    is_default=False)
        for d in sd.query_devices() if d["max_output_channels"] > 0
    ]
    try:
        return find_input_device(spec, outputs)
    except DeviceError as exc:
        raise DeviceError(str(exc).replace("input", "output")) from None
