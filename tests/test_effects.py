import math

import numpy as np
import pytest

from core.effects import EffectAmounts, Effects, Pulse


def test_pulse_jumps_and_decays_exponentially():
    p = Pulse(decay_s=0.1)
    assert p.value(0.0) == 0.0
    p.trigger(0.8, t_s=1.0)
    assert p.value(1.0) == pytest.approx(0.8)
    assert p.value(1.1) == pytest.approx(0.8 / math.e)
    assert p.value(1.3) == pytest.approx(0.8 * math.exp(-3))
    assert p.value(1.05) > p.value(1.06) > p.value(1.2)


def test_weak_trigger_does_not_cut_a_strong_pulse_and_strength_is_clipped():
    p = Pulse(decay_s=0.1)
    p.trigger(1.0, t_s=0.0)
    p.trigger(0.1, t_s=0.01)
    assert p.value(0.01) == pytest.approx(math.exp(-0.1))
    p.trigger(5.0, t_s=2.0)
    assert p.value(2.0) == 1.0


def gradient_frame(h=64, w=96):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 60)], axis=-1).astype(np.uint8)


def test_no_pulse_no_intensity_is_identity():
    frame = gradient_frame()
    out = Effects().apply(frame, pulse=0.0, intensity=0.0, t_s=0.0)
    np.testing.assert_array_equal(out, frame)


def test_zoom_keeps_shape_and_enlarges_the_centre():
    frame = gradient_frame()
    fx = Effects(EffectAmounts(zoom=0.5, brightness=0.0, intensity_zoom=0.0, shift=0.0))
    out = fx.apply(frame, pulse=1.0, intensity=0.0, t_s=0.0)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # Zoomed 1.5x about the centre, the red gradient (x) spans a third less.
    span_in = int(frame[:, :, 0].max()) - int(frame[:, :, 0].min())
    span_out = int(out[:, :, 0].max()) - int(out[:, :, 0].min())
    assert span_out == pytest.approx(span_in / 1.5, rel=0.05)
    # The centre pixel stays put.
    assert abs(int(out[32, 48, 0]) - int(frame[32, 48, 0])) <= 3


def test_brightness_rises_with_pulse():
    frame = gradient_frame()
    fx = Effects(EffectAmounts(zoom=0.0, intensity_zoom=0.0, shift=0.0))
    means = [float(fx.apply(frame, pulse=p, intensity=0.0, t_s=0.0).mean()) for p in (0.0, 0.3, 0.6, 1.0)]
    assert means == sorted(means) and means[-1] > means[0] * 1.3
    dark = np.zeros((8, 8, 3), np.uint8)
    assert fx.apply(dark, pulse=1.0, intensity=0.0, t_s=0.0).min() > 5  # a black frame flashes too


def test_shift_moves_with_intensity_and_time():
    frame = gradient_frame()
    fx = Effects(EffectAmounts(zoom=0.0, brightness=0.0, intensity_zoom=0.0, shift=0.1, shift_rate_hz=0.25))
    # t=0: the drift is along +x (cos), so sampled x grows: the red channel gets larger.
    out = fx.apply(frame, pulse=0.0, intensity=1.0, t_s=0.0).copy()
    assert out[:, :, 0].mean() > frame[:, :, 0].mean() + 10
    np.testing.assert_array_equal(out[:, :, 1], frame[:, :, 1])  # no vertical move at t=0
    # t=1 s at 0.25 Hz: a quarter turn, the drift is along +y now.
    out = fx.apply(frame, pulse=0.0, intensity=1.0, t_s=1.0)
    assert out[:, :, 1].mean() > frame[:, :, 1].mean() + 10


def test_feedback_leaves_a_trail():
    fx = Effects(EffectAmounts(zoom=0.0, brightness=0.0, intensity_zoom=0.0, shift=0.0, feedback=0.5))
    white = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    fx.apply(white, pulse=0, intensity=0, t_s=0)
    out = fx.apply(black, pulse=0, intensity=0, t_s=0)
    assert 120 <= out.min() <= out.max() <= 130  # half of the previous white


def test_rejects_float_frames():
    with pytest.raises(ValueError, match="uint8"):
        Effects().apply(np.zeros((4, 4, 3), np.float32), pulse=0, intensity=0, t_s=0)


def test_flash_whitens_strong_onsets_and_barely_touches_weak_ones():
    frame = np.full((8, 8, 3), 40, np.uint8)
    still = dict(zoom=0.0, intensity_zoom=0.0, shift=0.0, brightness=0.0)
    off = Effects(EffectAmounts(**still))
    on = Effects(EffectAmounts(**still, flash=0.8))
    assert (off.apply(frame, pulse=1.0, intensity=0.0, t_s=0.0) == 40).all()  # flash 0: nothing
    assert (on.apply(frame, pulse=0.0, intensity=0.0, t_s=0.0) == 40).all()  # no onset: nothing
    full = int(on.apply(frame, pulse=1.0, intensity=0.0, t_s=0.0)[0, 0, 0])
    weak = int(on.apply(frame, pulse=0.3, intensity=0.0, t_s=0.0)[0, 0, 0])
    assert full == round(40 + (255 - 40) * 0.8)  # 80 % of the way to white
    assert 40 < weak < 40 + (full - 40) * 0.15  # pulse**2: a weak onset flashes ~9 % as much


def test_effects_from_a_preset_section_carry_every_field():
    from core.presets import EffectsSection

    a = EffectAmounts.from_config(EffectsSection(pulse=0.5, zoom=0.5, shift=0.5, feedback=0.5, flash=0.5))
    b = EffectAmounts.from_config(EffectsSection())
    assert all(getattr(a, f) != getattr(b, f) for f in ("zoom", "brightness", "intensity_zoom", "shift", "feedback",
                                                        "flash"))
