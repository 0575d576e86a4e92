"""``m2v live``: wires the stages and runs the display loop on the main thread.

Start order follows the data: audio source -> feature worker -> embedder ->
optimizer worker -> OSC listener -> (recorder); the main thread runs the
director (pure, single-threaded), the fast-path effects and the display, and
hands each shown frame (no HUD) to the video outputs (live.outputs), each on
its own thread.  Stop
order is the reverse of what feeds what, so every queue drains and the
recording is finalized (also on SIGINT/SIGTERM and window close).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.commands import Seen, frame_commands
from core.events import APP_CUES, BankSelect, Beat, Freeze, MidiLearn, Onset, Record, Tap
from live.audio_input import DEFAULT_BLOCK

log = logging.getLogger(__name__)

DISPLAY_HZ = 60.0


@dataclass
class LiveOptions:
    input: str | None = None
    preset: str | None = None
    show: str | None = None
    models: str | None = None
    size: int | str | None = None  # S or "WxH" (core.presets.parse_size)
    device: str | None = None  # None: the preset's models.device
    seed: int | None = None
    offline: bool = False
    display: int = 0
    windowed: bool = False
    headless: bool = False
    record: str | None = None
    duration_s: float | None = None
    stats: str | None = None
    osc_port: int | None = None
    osc_host: str | None = None
    osc_allow: str | None = None
    osc_feedback: str | None = None
    block: int = DEFAULT_BLOCK
    play: str | None = None
    loop: bool = False
    outputs: list[str] | None = None  # KIND[:NAME] each; None: the preset's [outputs] targets
    preview_port: int | None = None
    preview_host: str | None = None
    preview_allow: str | None = None  # "CIDR[,CIDR...]"
    midi: tuple[str, ...] = ()  # port-name words or 'all'; empty: the preset's [midi] ports
    midi_api: str | None = None
    midi_map: str | None = None
    link: bool = False
    latency_ms: float | None = None


def _get_field(preset, dotted: str):
    section, field = dotted.split(".")
    return getattr(getattr(preset, section), field)


def _output_overrides(opts: LiveOptions) -> dict:
    """The output and preview flags as preset overrides (validated there); ``--output`` replaces the targets."""
    out: dict = {}
    if opts.outputs is not None:
        out["outputs.targets"] = list(opts.outputs)
    if opts.preview_port is not None:
        out["outputs.preview_port"] = opts.preview_port
    if opts.preview_host is not None:
        out["outputs.preview_host"] = opts.preview_host
    if opts.preview_allow is not None:
        out["outputs.preview_allow"] = [s.strip() for s in opts.preview_allow.split(",") if s.strip()]
    return out


_RECENT_S = 5.0  # an embedder or OSC problem stays on the HUD this long after it happened


class LiveApp:
    """Everything ``m2v live`` runs; :meth:`run` returns the stats dict."""

    def __init__(self, opts: LiveOptions) -> None:
        import torch

        from core.analyzer import StreamingAnalyzer
        from core.director import Director
        from core.effects import EffectAmounts, Effects, Pulse
        from core.encoders import Encoders
        from core.models import load_models, resolve_device
        from core.optimizer import LatentOptimizer, start_from_init
        from core.presets import default_preset_name
        from live.audio_input import open_input
        from live.cues import CueInput
        from live.embedder import Embedder
        from live.feature_worker import FeatureWorker
        from live.optimizer_worker import OptimizerWorker
        from live.osc import OscFeedback, OscListener, parse_host_port

        self.opts = opts
        auto = resolve_device(opts.device or "auto")
        name = opts.preset or default_preset_name(command="live", cuda=auto.type == "cuda")
        overrides = {}
        if opts.models:
            overrides["models.set"] = opts.models
        if opts.size is not None:
            overrides["models.size"] = opts.size
        if opts.seed is not None:
            overrides["guidance.seed"] = opts.seed
        overrides.update(_output_overrides(opts))
        from live.preset_watcher import PresetWatcher

        # The watcher resolves the preset (with the CLI's overrides) and hot-reloads edits to its
        # files and /m2v/preset switches.
        self.watcher = PresetWatcher(name, overrides=overrides)
        self.preset = preset = self.watcher.current
        device = resolve_device(opts.device or preset.models.device)
        self.show_state = None
        if opts.show:
            from core.show import ShowState, load_show

            self.show_state = ShowState(load_show(opts.show, default_preset=name))

        # --- models and engine -------------------------------------------------
        torch.manual_seed(preset.guidance.seed)
        self.models = load_models(preset.models.set, device=device, offline=opts.offline)
        w, h = preset.models.size_wh
        self.optimizer = LatentOptimizer.from_config(self.models, preset.guidance, size=(w, h), device=device)
        start_from_init(self.optimizer, preset.guidance.init)
        self.encoders = Encoders(self.models)

        # --- audio ---------------------------------------------------------------
        self.source = open_input(opts.input, block=opts.block, play=opts.play, loop=opts.loop)
        self.analyzer = StreamingAnalyzer.from_config(sr=self.source.sr, onsets=preset.onsets,
                                                      intensity=preset.intensity)
        self.analyzer.warmup()  # numba compilation here, never on the real-time path
        self.features = FeatureWorker(self.source, self.analyzer)

        # --- control ---------------------------------------------------------------
        self.cues = CueInput(clock=self.source.stream_time_s)
        self.director = Director.from_config(preset)
        port = preset.osc.port if opts.osc_port is None else opts.osc_port
        self.osc = OscListener(
            cues=self.cues, host=opts.osc_host or preset.osc.host, port=port, prefix=preset.osc.prefix,
            allow=opts.osc_allow or (",".join(preset.osc.allow) or None), eos_cues=preset.osc.eos_cues,
        )
        fb = opts.osc_feedback or preset.osc.feedback
        self.feedback = None
        if fb:
            host, fport = parse_host_port(fb)
            self.feedback = OscFeedback(host=host, port=fport, prefix=preset.osc.prefix)
        self._open_tempo_and_midi(preset)

        # --- workers -------------------------------------------------------------
        self.embedder = Embedder(self.encoders, self.source.ring, consistency=preset.guidance.consistency,
                                 style_weight=preset.guidance.style_weight)
        self.worker = OptimizerWorker(self.optimizer, self.embedder.targets, rate_hz=preset.rate.min_steps_per_s,
                                      crossfade_steps=preset.guidance.crossfade_steps)
        self.pulse = Pulse(decay_s=0.15)
        self.effects = Effects(EffectAmounts.from_config(preset.effects))
        self.recorder = None
        self.record_path = opts.record
        self.recordings: list[dict] = []  # {"path", "recorder"}, in the order they started
        self._finishing: list[threading.Thread] = []
        self.display = self._open_display()
        from live.outputs import OutputSet

        self.outputs = OutputSet.from_config(preset.outputs, audio_sr=self.source.sr)  # each on its own thread
        for sink in self.outputs.audio_sinks():  # NDI with ndi_audio: the input audio goes along
            self.features.add_audio_sink(sink)
        self._stop_requested = False
        self._record_errors: list[str] = []
        from live.showstats import ShowStats

        self.stats = ShowStats()
        self._no_audio_note = None
        if self.models.audio is None:
            # e.g. vitb16-text: lyrics, prompts and the bank guide the picture; onsets still drive rate and effects
            self._no_audio_note = f"models {self.models.name}: no audio encoder, audio targets off"
            log.warning("%s; lyric, prompt and bank cues still guide the picture", self._no_audio_note)

    # --- pieces --------------------------------------------------------------------

    def _open_tempo_and_midi(self, preset) -> None:
        """The beat grid's sources (Link, MIDI clock, taps, the audio tracker) and the MIDI input."""
        from core.tempo import AudioBeats, BeatGrid, MidiClock, TapTempo

        opts = self.opts
        self.taps, self.midi_clock = TapTempo(), MidiClock()
        self.audio_beats = AudioBeats(latency_s=self._latency_ms(preset) / 1000.0)
        self.link = None
        if opts.link or preset.tempo.link:
            from live.link import LinkTempo

            self.link = LinkTempo(clock=self.source.stream_time_s)
        self.grid = BeatGrid([s for s in (self.link, self.midi_clock, self.taps, self.audio_beats) if s])
        self.midi = None
        self._learn_armed = False
        ports = list(opts.midi) or list(preset.midi.ports)
        if ports:
            from live.midi import MidiInput

            self.midi = MidiInput(cues=self.cues, ports=ports, api=opts.midi_api or preset.midi.api,
                                  map_name=opts.midi_map or preset.midi.map or None, tempo=self.midi_clock,
                                  clock=self.source.stream_time_s, state=self._toggle_state)

    def _latency_ms(self, preset) -> float:
        return preset.tempo.latency_ms if self.opts.latency_ms is None else self.opts.latency_ms

    def _toggle_state(self, action: str) -> bool:
        """A toggle action's current state, for latch buttons (read from the MIDI thread)."""
        d = self.director
        return {"freeze": d.frozen, "blackout": d.blackout, "record": d.recording}.get(action, False)

    def _active_bank(self) -> int | None:
        cur = self.director.current
        if cur.kind != "prompt":
            return None
        texts = [t for t, _ in self.director.bank]
        return texts.index(cur.text) + 1 if cur.text in texts else None

    def _open_display(self):
        from live.display import HeadlessDisplay, PygameDisplay

        if self.opts.headless:
            return HeadlessDisplay(fps_limit=None)  # the app loop paces itself
        return PygameDisplay(display_index=self.opts.display, fullscreen=not self.opts.windowed, fps_limit=None)

    def _next_record_path(self) -> Path:
        """``--record``'s path for the first recording; later ones (R key, ``/m2v/record 1``) never overwrite it."""
        first = Path(self.record_path or time.strftime("m2v-%Y%m%d-%H%M%S.mp4"))
        used = {r["path"] for r in self.recordings}
        path, k = first, 1
        while str(path) in used or (k > 1 and path.exists()):
            k += 1
            path = first.with_name(f"{first.stem}-{k}{first.suffix}")
        return path

    def _start_recording(self) -> None:
        from live.recorder import Recorder

        if self.recorder is not None:
            return
        path = self._next_record_path()
        rec = self.preset.record
        self.recorder = Recorder(path, fps=rec.fps, sr=self.source.sr, crf=rec.crf, preset=rec.preset,
                                 audio_bitrate=rec.audio_bitrate_kbps * 1000)
        self.recorder.start()
        self.recordings.append({"path": str(path), "recorder": self.recorder})
        self.features.add_audio_sink(self._record_audio)
        log.info("recording to %s", path)

    def _record_audio(self, block, t_s) -> None:
        rec = self.recorder
        if rec is not None:
            rec.write_audio(block, t_s)

    def _stop_recording(self) -> None:
        """Stop taking frames and sound at once; the encoder finishes the file on a thread of its own.

        Finishing (encoding what is queued, writing the trailer) can take seconds on
        a loaded machine, and the display thread must not wait for it.
        :meth:`_finish_recordings` joins these threads when the show ends.
        """
        rec, self.recorder = self.recorder, None
        if rec is None:
            return
        self.features.remove_audio_sink(self._record_audio)
        t = threading.Thread(target=rec.stop, name=f"m2v-finish-{Path(rec.path).name}", daemon=True)
        t.start()
        self._finishing.append(t)

    def _finish_recordings(self, timeout_s: float = 60.0) -> None:
        self._stop_recording()
        deadline = time.perf_counter() + timeout_s
        for t in self._finishing:
            t.join(max(0.0, deadline - time.perf_counter()))
            if t.is_alive():
                log.warning("%s did not finish within %.0f s", t.name, timeout_s)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_requested = True

    # --- the loop --------------------------------------------------------------------

    def run(self) -> dict:
        prev_handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                prev_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (tests)
                pass
        self.cues_not_visible = 0  # cue_visible: toy models only, see _watch_cue
        self._visible_pending = None  # (arrival stream time, scene)
        self._last_judged_step = -1
        self._pending_onsets: list[float] = []
        self._last_feedback = 0.0
        self.preset_updates: list[dict] = []
        self._preset_version = self.watcher.updates.get()[1]
        if self.opts.record:
            # --record records from the first sample; the R key and /m2v/record 0 can stop it like any other
            self.director.recording = True
            self._start_recording()
        self._seen = Seen(threshold=self.director.onset_threshold, recording=self.director.recording)
        for stage in (self.outputs, self.osc, self.midi, self.watcher, self.embedder, self.worker, self.features,
                      self.source):
            if stage is not None:
                stage.start()
        t0 = next_frame = time.perf_counter()
        try:
            while not self._stop_requested and not self._finished(t0):
                now = time.perf_counter()
                drained = self._feed_director(now)
                cmds = self._command_stages()
                self._present(now, cmds, drained)
                self._handle_keys()
                self._send_feedback(now, cmds)
                self.stats.memory.maybe_sample(now)
                # A failing input degrades the show (the HUD says why; the picture goes on); a failing
                # analysis or optimizer thread is a bug and ends it.
                for stage in (self.features, self.worker):
                    if stage.error is not None:
                        raise stage.error
                next_frame += 1.0 / DISPLAY_HZ
                delay = next_frame - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_frame = time.perf_counter()
        finally:
            run_s = time.perf_counter() - t0
            for stage in (self.source, self.features, self.embedder, self.worker, self.osc, self.midi,
                          self.watcher):
                if stage is not None:
                    stage.stop()
            if self.link is not None:
                self.link.close()
            self._finish_recordings()
            self.outputs.stop()
            self.display.close()
            if self.feedback is not None:
                self.feedback.close()
            for sig, handler in prev_handlers.items():
                signal.signal(sig, handler)
        stats = self._stats(run_s)
        if self.opts.stats:
            Path(self.opts.stats).write_text(json.dumps(stats, indent=2))
        return stats

    # --- one display frame ------------------------------------------------------------

    def _finished(self, t0: float) -> bool:
        if self.opts.duration_s is not None and time.perf_counter() - t0 >= self.opts.duration_s:
            return True
        return (self.source.finished.is_set() and len(self.features.events) == 0
                and self.source.ring.available() == 0)

    def _feed_director(self, now: float) -> list:
        """Audio events, cues, show cues, the clock and preset updates into the director; returns the cues."""
        stream_t = self.source.stream_time_s()
        for ev in self.features.events.get_all():
            if isinstance(ev, Beat):  # the tracker is one of the grid's sources (core.tempo)
                self.audio_beats.on_beat(ev)
                continue
            self.director.on_audio(ev)
            if isinstance(ev, Onset):
                self.pulse.trigger(ev.strength, now)
                self._pending_onsets.append(ev.time_s)
        for beat in self.grid.beats(stream_t):
            self.director.on_audio(beat)
        drained = self.cues.drain_timed()
        for t_cue, cue in drained:
            if isinstance(cue, APP_CUES):
                self._app_cue(cue, t_cue)
                continue
            self.director.on_cue(cue, now_s=max(t_cue, 0.0))
            self._watch_cue(t_cue, cue)
        if self.show_state is not None:
            for c in self.show_state.due_cues(stream_t):
                self.director.on_cue(c.event(), now_s=stream_t)
        self.director.tick(stream_t)
        update, version = self.watcher.updates.get()
        if version != self._preset_version:
            self._preset_version = version
            if update is not None:
                self.preset_updates.append({"time": stream_t, "live": list(update.live_fields),
                                            "reload": list(update.reload_fields)})
                self._apply_preset(update.preset)
        for req in self.director.take_app_requests():
            self._handle_request(req, stream_t)
        return drained

    def _command_stages(self):
        """The pure step (core.commands) from the director's state to each stage, applied."""
        cmds, self._seen = frame_commands(self.director, self.preset.rate, self._seen)
        if cmds.target is not None:
            self.embedder.requests.put(cmds.target)
        if cmds.threshold is not None:
            self.features.set_threshold(cmds.threshold)
        self.worker.set_rate(cmds.rate_hz)
        self.worker.set_paused(cmds.paused)
        if cmds.record:
            self._start_recording()
        elif cmds.record is False:
            self._stop_recording()
        return cmds

    def _present(self, now: float, cmds, drained: list) -> None:
        """Effects, blackout, the display and the HUD; then the frame's latencies and the recorder."""
        stream_t = self.source.stream_time_s()
        item, _ = self.worker.frames.get()  # ((frame, step), version)
        frame = item[0] if item is not None else np.zeros((64, 64, 3), np.uint8)
        shown = self.effects.apply(frame, pulse=self.pulse.value(now), intensity=cmds.intensity, t_s=now)
        if cmds.blackout:
            shown = np.zeros_like(shown)
        self.display.show(shown, self._hud())
        self.outputs.offer(shown)  # what the screen shows, without the HUD; never waits for a receiver
        presented = self.source.stream_time_s()
        self.stats.presented(time.perf_counter())
        for t_cue, _ in drained:
            self.stats.cue_latency.add(max(0.0, presented - t_cue) * 1000.0)
        if self._visible_pending is not None and item is not None and item[1] != self._last_judged_step:
            self._last_judged_step = item[1]  # judge each new optimizer frame once, as shown
            self._judge_shown(shown, presented)
        for onset_t in self._pending_onsets:
            self.stats.onset_latency.add(max(0.0, presented - onset_t) * 1000.0)
        self._pending_onsets.clear()
        if self.recorder is not None:
            self.recorder.write_frame(shown, t_s=stream_t)
            err = self.recorder.check()
            if err and err not in self._record_errors:
                self._record_errors.append(err)

    def _app_cue(self, cue, t_cue: float) -> None:
        """Tempo taps and MIDI learn requests (from keys, OSC or MIDI): the app's, not the director's."""
        if isinstance(cue, Tap):
            self.taps.tap(t_cue)
        elif isinstance(cue, MidiLearn):
            if self.midi is None:
                self._midi_note = "MIDI learn: no MIDI input; start m2v live with --midi PORT (or --midi all)"
                self._midi_note_at = time.monotonic()
                log.warning("%s", self._midi_note)
            else:
                self.midi.learn(cue.action)

    _LEARNABLE_KEYS = {"freeze": "freeze", "record": "record", "tap": "tap",
                       **{f"bank{i}": f"bank {i}" for i in range(1, 10)}}
    _midi_note: str | None = None
    _midi_note_at = float("-inf")

    def _handle_keys(self) -> None:
        for action in self.display.poll_keys():
            if action == "learn":  # L, then the key whose action the next MIDI control takes over
                self._learn_armed = not self._learn_armed
                self._midi_note = "MIDI learn: press the key to bind (space, R, T, 1-9); L again cancels" \
                    if self._learn_armed else None
                self._midi_note_at = time.monotonic()
            elif self._learn_armed and action in self._LEARNABLE_KEYS:
                self._learn_armed, self._midi_note = False, None
                self._app_cue(MidiLearn(self._LEARNABLE_KEYS[action]), 0.0)
            elif action == "quit":
                self._stop_requested = True
            elif action == "tap":
                self.cues.push(Tap(), source="key")
            elif action == "freeze":
                self.cues.push(Freeze(not self.director.frozen), source="key")
            elif action == "record":
                self.cues.push(Record(not self.director.recording), source="key")
            elif action.startswith("bank"):
                self.cues.push(BankSelect(int(action[4:])), source="key")
            else:
                self.display.handle(action)  # fullscreen and the like

    def _send_feedback(self, now: float, cmds) -> None:
        if now - self._last_feedback <= 0.05:
            return
        self._last_feedback = now
        if self.midi is not None:
            d = self.director
            self.midi.update_leds(toggles={"freeze": d.frozen, "blackout": d.blackout,
                                           "record": self.recorder is not None}, bank=self._active_bank())
        if self.feedback is None:
            return
        cur = self.director.current
        self.feedback.send_state(guidance=cur.text or "", kind=cur.kind, intensity=cmds.intensity,
                                 onset=self.pulse.value(now), steps_per_s=self.worker.steps_per_s,
                                 recording=self.recorder is not None, frozen=self.director.frozen,
                                 blackout=self.director.blackout)

    def _watch_cue(self, t_cue: float, cue) -> None:
        """Start timing a lyric/prompt cue until the picture visibly shows it (toy models only).

        Only the toy set has a world the judge (:mod:`core.judge`) can read, and
        only a toy caption ("a red circle") says what should become visible.  A
        newer cue before the picture showed the last one counts that one as missed.
        """
        from core.events import LyricCue, PromptCue

        if self.models.name != "toy" or not isinstance(cue, (LyricCue, PromptCue)):
            return
        from core.errors import ConfigError
        from core.judge import parse_caption

        try:
            scene = parse_caption(cue.text)
        except ConfigError:
            return
        if self._visible_pending is not None:
            self.cues_not_visible += 1
        self._visible_pending = (t_cue, scene)

    def _judge_shown(self, shown: np.ndarray, presented_s: float) -> None:
        from core.judge import matches

        t_cue, scene = self._visible_pending
        step = max(1, max(shown.shape[:2]) // 128)  # the judge reads colours: 128 px is plenty
        if matches(shown[::step, ::step], scene, shape=False):
            self.stats.cue_visible.add(max(0.0, presented_s - t_cue) * 1000.0)
            self._visible_pending = None

    def _handle_request(self, req, stream_t: float) -> None:
        from core.events import PresetSwitch, SongSelect

        if isinstance(req, SongSelect) and self.show_state is not None:
            try:
                song = self.show_state.select(req.song, now_s=stream_t)
                self._apply_preset(song.preset)
            except Exception as exc:  # noqa: BLE001 - a bad cue must not stop the show
                log.warning("song %r: %s", req.song, exc)
        elif isinstance(req, PresetSwitch):
            self.watcher.switch(req.name)  # loaded off this thread; errors go to the HUD

    def _apply_preset(self, new) -> None:
        """Apply every field :func:`core.presets.live_diff` calls live; report the rest as needing a restart.

        Each stage takes its section on its own thread (``configure``); the director and the
        effects run on this one.  ``[rate] curve_gamma`` and ``[record]`` are read from
        ``self.preset`` where they are used (every frame; each new recording).
        """
        from core.effects import EffectAmounts
        from core.presets import live_diff
        from live.osc import OscFeedback, parse_allow_list, parse_host_port

        live, reload = live_diff(self.preset, new)
        if reload:
            log.warning("preset %s: %s need a restart and were not applied", new.name, ", ".join(reload))
        # Keep the fields that need a restart as they run, so the next diff still reports them.
        from core.presets import RELOAD_FIELDS, apply_overrides

        keep = {f: _get_field(self.preset, f) for f in reload if f in RELOAD_FIELDS}
        self.preset = apply_overrides(new, keep, origin="running values") if keep else new
        self.director.configure(self.preset)
        self.features.configure(self.preset.onsets, self.preset.intensity)
        self.worker.configure(self.preset.guidance)
        self.embedder.configure(self.preset.guidance)
        self.effects.amounts = EffectAmounts.from_config(self.preset.effects)
        preview = self.outputs.preview
        if "outputs.preview_allow" in live and preview is not None and not self.opts.preview_allow:
            from live.outputs.preview import parse_allow

            preview.allow = parse_allow(self.preset.outputs.preview_allow)
        self.audio_beats.latency_s = self._latency_ms(self.preset) / 1000.0
        osc = self.preset.osc
        if any(f.startswith("osc.") for f in live):
            self.osc.allow = parse_allow_list(",".join(osc.allow) or None)
            self.osc.eos_cues = {str(k).strip(): str(v) for k, v in osc.eos_cues.items()}
            if "osc.feedback" in live and not self.opts.osc_feedback:
                if self.feedback is not None:
                    self.feedback.close()
                self.feedback = None
                if osc.feedback:
                    host, port = parse_host_port(osc.feedback)
                    self.feedback = OscFeedback(host=host, port=port, prefix=osc.prefix)

    def _problem_lines(self) -> list[str]:
        """Every stage's current problem, for the HUD (and, all of them over the show, ``--stats``)."""
        recent = time.monotonic() - _RECENT_S
        preset_error, _ = self.watcher.errors.get()
        lines = [self.source.check(), *self._record_errors[-1:], self.worker.degraded,
                 preset_error and f"preset: {preset_error}",
                 self.embedder.last_error if self.embedder.last_error_at > recent else None,
                 f"osc: {self.osc.last_error}" if self.osc.last_error and self.osc.last_error_at > recent else None,
                 *self.outputs.problem_lines(recent_s=_RECENT_S), self.midi and self.midi.problem(),
                 self._no_audio_note]
        lines = [x for x in lines if x]
        for line in lines:
            self.stats.problems.note(line)
        return lines

    def _hud(self) -> dict:
        cur = self.director.current
        lines = self._problem_lines()
        return {
            "fps": self.stats.fps_now(), "steps_per_s": self.worker.steps_per_s,
            # flat out: the hardware is slower than the rate the music asks for
            "steps_note": "flat out" if self.worker.flat_out else None,
            "intensity": self.director.effective_intensity, "onset": self.pulse.value(time.perf_counter()),
            "guidance": f"{cur.kind}: {cur.text or ''}", "dropped": self.source.dropped,
            "recording": self.recorder is not None, "frozen": self.director.frozen,
            "outputs": self.outputs.hud() or None,
            "tempo": self._tempo_text(), "midi": self._midi_text(),
            "error": " | ".join(lines) or None,
        }

    def _tempo_text(self) -> str:
        g = self.grid
        return f"{g.source} {g.bpm:.1f} BPM" if g.source and g.bpm else "no beat grid yet"

    def _midi_text(self) -> str | None:
        if self._midi_note and (self._learn_armed or time.monotonic() - self._midi_note_at < _RECENT_S):
            return self._midi_note
        return self.midi.hud_line() if self.midi is not None else None

    def _stats(self, run_s: float) -> dict:
        recs = [r["recorder"] for r in self.recordings]
        steps = int(self.worker.counters["steps"])
        visible = self.stats.cue_visible.summary()
        visible.update(not_visible=self.cues_not_visible + (self._visible_pending is not None),
                       criterion="toy judge: the cue's colour among the frame's two largest")
        return {
            "run_s": run_s,
            "audio_blocks": self.source.blocks,
            "audio_dropped": self.source.dropped,
            "onsets": [round(t, 4) for t in self.features.onset_times],  # the newest ones (bounded)
            "onsets_total": int(self.features.counters["onsets"]),
            "target_swaps": list(self.director.swaps),  # the newest ones (bounded)
            "target_swaps_total": self.director.swap_count,
            "steps": steps,
            "steps_per_s": steps / run_s if run_s > 0 else 0.0,
            "display_fps": self.stats.display_fps(run_s),
            "recorder_frames": sum(r.frames for r in recs),
            "recorder_dropped": sum(r.dropped for r in recs),
            "recordings": [{"path": r["path"], "frames": r["recorder"].frames, "dropped": r["recorder"].dropped,
                            "error": r["recorder"].check()} for r in self.recordings],
            "latency_ms": self.stats.onset_latency.summary(),
            "cue_latency_ms": self.stats.cue_latency.summary(),
            "cue_visible_ms": visible,
            "preset_updates": self.preset_updates,
            "preset_error": self.watcher.errors.get()[0],
            "models": self.models.name,
            "preset": self.preset.name,
            "size": list(self.optimizer.size),
            "flat_out": self.worker.flat_out,
            "osc": dict(self.osc.counters),
            "outputs": self.outputs.stats(),  # per output: sent, dropped, errors, the last error
            "midi": dict(self.midi.counters) if self.midi is not None else None,
            "tempo": {"source": self.grid.source, "bpm": self.grid.bpm, "switches": self.grid.switches,
                      "latency_ms": self.audio_beats.latency_s * 1000.0},
            "errors": self.stats.problems.lines(),
            "memory": self.stats.memory.summary(),
        }
