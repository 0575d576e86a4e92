"""Preset schema, resolution (extends, user folder) and error reporting."""

from __future__ import annotations

from core.presets import tomllib  # tomli on python 3.10
from pathlib import Path

import pytest

from core import presets
from core.errors import ConfigError
from core import paths
from core.paths import shipped_presets_dir, user_presets_dir
from core.presets import (
    Preset, apply_overrides, default_preset_name, list_presets, live_diff, load_preset, parse_size,
    schema_markdown, to_json, to_toml, validate_files,
)

SHIPPED = sorted(shipped_presets_dir().glob("*.toml"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_m2v_home_follows_env(m2v_home, monkeypatch):
    assert paths.m2v_home() == m2v_home
    assert user_presets_dir() == m2v_home / "presets"
    monkeypatch.delenv("M2V_HOME")
    assert paths.m2v_home().name == "m2v"  # platform user cache dir for "m2v"


def test_shipped_presets_exist_and_validate(m2v_home):
    assert {p.stem for p in SHIPPED} >= {"paper", "club", "ambient", "cpu", "tiny"}
    assert validate_files(SHIPPED) == []
    for path in SHIPPED:
        preset = load_preset(path.stem)
        assert preset.name == path.stem
        assert preset.description, f"{path.name} needs a description"


def test_shipped_presets_say_what_they_promise(m2v_home):
    paper = load_preset("paper")
    assert (paper.render.segments, paper.render.rate, paper.guidance.consistency) == ("beats", "paper", "average")
    cpu = load_preset("cpu")
    assert cpu.models.size == 128 and cpu.models.device == "cpu"
    assert cpu.guidance.cutouts < paper.guidance.cutouts
    tiny = load_preset("tiny")
    assert tiny.extends == "cpu" and tiny.models.set == "tiny"
    assert tiny.models.device == "cpu"  # inherited from cpu
    assert tiny.sources == (shipped_presets_dir() / "tiny.toml", shipped_presets_dir() / "cpu.toml")
    club, ambient = load_preset("club"), load_preset("ambient")
    assert club.rate.max_steps_per_s > ambient.rate.max_steps_per_s
    assert club.effects.pulse > ambient.effects.pulse
    assert ambient.guidance.crossfade_steps > club.guidance.crossfade_steps
    assert default_preset_name(command="render", cuda=True) == "paper"
    assert default_preset_name(command="live", cuda=False) == "cpu"


def test_every_field_has_default_description_and_allowed_text():
    for section, cls in presets.SECTIONS.items():
        instance = cls()  # every field has a default
        for name, info in cls.model_fields.items():
            assert info.description, f"{section}.{name} has no description"
            assert presets.allowed_text(info), f"{section}.{name} has no allowed values"
            assert getattr(instance, name) is not None or name == "extends"
    assert "| `cutouts` | `32` | int 1 <= x <= 512 | live |" in schema_markdown()


def test_extends_resolves_child_wins_and_tables_merge(tmp_path, m2v_home):
    write(tmp_path / "base.toml", """
        description = "base"
        [rate]
        min_steps_per_s = 2.0
        max_steps_per_s = 10.0
        [osc.eos_cues]
        "1/1" = "first"
        "1/2" = "second"
        [guidance]
        prompt_bank = [{ text = "a" }, { text = "b" }]
    """.replace("\n        ", "\n"))
    child = write(tmp_path / "child.toml", """
extends = "base.toml"
[rate]
max_steps_per_s = 30.0
[osc.eos_cues]
"1/2" = "changed"
[guidance]
prompt_bank = [{ text = "c", weight = 0.5 }]
""")
    p = load_preset(child)
    assert p.name == "child" and p.description == ""  # name/description not inherited
    assert (p.rate.min_steps_per_s, p.rate.max_steps_per_s) == (2.0, 30.0)  # merged, child wins
    assert p.osc.eos_cues == {"1/1": "first", "1/2": "changed"}
    assert [(b.text, b.weight) for b in p.guidance.prompt_bank] == [("c", 0.5)]  # lists replaced
    assert p.guidance.cutouts == Preset().guidance.cutouts  # schema default fills the rest


def test_extends_cycle_is_reported(tmp_path, m2v_home):
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="extends cycle"):
        load_preset(tmp_path / "a.toml")
    errors = validate_files([tmp_path / "a.toml"])
    assert len(errors) == 1 and "a.toml -> " in errors[0]


def test_three_mistakes_all_reported_with_field_names(tmp_path, m2v_home):
    bad = write(tmp_path / "bad.toml", """
extends = "club"
[guidance]
cutouts = 0
consistency = "avg"
[effects]
puls = 0.5
""")
    errors = validate_files([bad])
    assert len(errors) == 3, errors
    by_field = {e.split(": ")[1]: e for e in errors}
    assert set(by_field) == {"guidance.cutouts", "guidance.consistency", "effects.puls"}
    assert all(e.startswith(str(bad)) for e in errors)
    assert "got 0" in by_field["guidance.cutouts"] and "1 <= x <= 512" in by_field["guidance.cutouts"]
    assert "'avg'" in by_field["guidance.consistency"] and "'l1'" in by_field["guidance.consistency"]
    assert "did you mean 'pulse'" in by_field["effects.puls"]
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert "has 3 errors" in str(info.value)
    assert all(e in str(info.value) for e in errors)


def test_cross_field_rule_and_parent_blame(tmp_path, m2v_home):
    parent = write(tmp_path / "parent.toml", "[rate]\nmin_steps_per_s = 50.0\n[guidance]\nlr = -1\n")
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\n[rate]\nmax_steps_per_s = 10.0\n')
    errors = validate_files([child])
    assert any(e.startswith(f"{parent}: guidance.lr") for e in errors), errors
    assert any("min_steps_per_s (50.0) must be <= max_steps_per_s (10.0)" in e for e in errors), errors


def test_syntax_error_names_file_and_line(tmp_path, m2v_home):
    bad = write(tmp_path / "broken.toml", "[rate\nmax = 1\n")
    (error,) = validate_files([bad])
    assert str(bad) in error and "line 1" in error


def test_name_must_match_file(tmp_path, m2v_home):
    p = write(tmp_path / "mine.toml", 'name = "other"\n')
    (error,) = validate_files([p])
    assert "name" in error and "'mine'" in error


def test_unknown_preset_lists_available_names(m2v_home):
    write(m2v_home / "presets" / "gig.toml", 'description = "mine"\n')
    with pytest.raises(ConfigError) as info:
        load_preset("clb")
    text = str(info.value)
    for name in ("ambient", "club", "cpu", "paper", "tiny", "gig"):
        assert name in text
    assert "Did you mean 'club'" in text


def test_user_dir_overrides_and_adds(m2v_home):
    user = m2v_home / "presets"
    write(user / "club.toml", 'description = "my club"\n[rate]\nmax_steps_per_s = 99.0\n')
    write(user / "gig.toml", 'description = "my gig"\nextends = "club"\n')
    club = load_preset("club")
    assert club.rate.max_steps_per_s == 99.0 and club.description == "my club"
    assert club.effects.pulse == Preset().effects.pulse  # the user file replaces, not extends
    assert load_preset("gig").rate.max_steps_per_s == 99.0  # named parents resolve to the user copy
    infos = {i.name: i for i in list_presets()}
    assert infos["club"].source == user / "club.toml" and infos["club"].description == "my club"
    assert infos["gig"].source == user / "gig.toml"
    assert infos["paper"].source == shipped_presets_dir() / "paper.toml"
    # an explicit user_dir wins over $M2V_HOME
    assert load_preset("club", user_dir=m2v_home / "elsewhere").rate.max_steps_per_s != 99.0


def test_user_file_can_extend_shipped_namesake(m2v_home):
    write(m2v_home / "presets" / "club.toml", 'extends = "club"\n[effects]\npulse = 0.1\n')
    club = load_preset("club")
    shipped = load_preset("club", user_dir=m2v_home / "none")
    assert club.effects.pulse == 0.1
    assert club.rate == shipped.rate  # the rest comes from the shipped club
    assert club.sources == (m2v_home / "presets" / "club.toml", shipped_presets_dir() / "club.toml")


def test_list_survives_a_broken_user_file(m2v_home):
    write(m2v_home / "presets" / "oops.toml", 'description = "bad"\n[rate]\ncurve_gamma = "x"\n')
    infos = {i.name: i for i in list_presets()}
    assert infos["oops"].error and "rate.curve_gamma" in infos["oops"].error
    assert infos["paper"].error is None


def test_live_diff_splits_model_fields():
    old = Preset()
    new = apply_overrides(old, {"models.size": 128, "rate.max_steps_per_s": 8.0, "effects": {"pulse": 0.9},
                                "osc.port": 9001})
    live, reload = live_diff(old, new)
    assert live == ["rate.max_steps_per_s", "effects.pulse"]
    assert reload == ["models.size", "osc.port"]
    assert live_diff(old, old) == ([], [])


def test_apply_overrides_validates():
    with pytest.raises(ConfigError, match=r"rate\.curve_gamma.*got 0"):
        apply_overrides(Preset(), {"rate": {"curve_gamma": 0}})


def test_size_and_rate_curve():
    p = apply_overrides(Preset(), {"models.size": "320x192", "rate": {"min_steps_per_s": 2.0,
                                   "max_steps_per_s": 10.0, "curve_gamma": 2.0}})
    assert p.models.size_wh == (320, 192)
    assert p.rate.steps_per_s(intensity=0.5) == pytest.approx(2.0 + 8.0 * 0.25)
    assert p.rate.steps_per_s(intensity=3.0) == 10.0
    with pytest.raises(ConfigError, match="models.size"):
        apply_overrides(Preset(), {"models.size": "320by192"})
    assert p.guidance.augmentations() == presets.DEFAULT_AUGMENTATIONS


@pytest.mark.parametrize("value, wh", [
    (64, (64, 64)), ("64", (64, 64)), ("96x64", (96, 64)), (" 640 X 360 ", (640, 360)), ("2048x16", (2048, 16)),
])
def test_parse_size_reads_s_and_wxh(value, wh):
    assert parse_size(value) == wh


@pytest.mark.parametrize("value", [8, "8", "64y", "x64", "64x", "64x64x64", "4096", "0x64", 64.0, True, None, ""])
def test_parse_size_rejects_with_the_forms(value):
    with pytest.raises(ValueError, match=r"expected S or 'WxH' with each side 16\.\.2048, e.g\. 256 or 640x360"):
        parse_size(value)


@pytest.mark.parametrize("toml, stored, wh", [
    ("size = 64", 64, (64, 64)), ('size = "64"', 64, (64, 64)), ('size = "640x360"', "640x360", (640, 360)),
    ('size = "96X96"', 96, (96, 96)),
])
def test_preset_size_forms(toml, stored, wh, m2v_home):
    write(m2v_home / "presets" / "sized.toml", f'extends = "cpu"\n[models]\n{toml}\n')
    p = load_preset("sized")
    assert p.models.size == stored and p.models.size_wh == wh
    assert live_diff(p, apply_overrides(p, {"models.size": f"{wh[0]}x{wh[1]}"})) == ([], [])  # same size, no reload


@pytest.mark.parametrize("toml", ['size = "64y"', "size = 8", 'size = "4096x64"', "size = 64.5"])
def test_bad_preset_size_names_file_field_and_forms(toml, m2v_home):
    path = write(m2v_home / "presets" / "badsize.toml", f"[models]\n{toml}\n")
    with pytest.raises(ConfigError) as exc:
        load_preset("badsize")
    msg = str(exc.value)
    assert str(path) in msg and "models.size" in msg and "S or 'WxH' with each side 16..2048" in msg


@pytest.mark.parametrize("name", [p.stem for p in SHIPPED])
def test_toml_and_json_output_round_trip(name, tmp_path, m2v_home):
    preset = load_preset(name)
    out = write(tmp_path / f"{name}.toml", to_toml(preset))
    resolved = preset.model_dump(exclude={"extends"})  # output is flat: extends already applied
    assert load_preset(out).model_dump(exclude={"extends"}) == resolved
    assert Preset.model_validate_json(to_json(preset)).model_dump(exclude={"extends"}) == resolved
    assert tomllib.loads(to_toml(preset))["name"] == name
