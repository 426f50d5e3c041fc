"""Config: presets, ``--set`` overrides, unknown keys with suggestions, validation, YAML in/out."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganforge.config import PRESETS, Config, ConfigError, apply_override, preset_config
from ganforge.config import resolve as resolve_values
from ganforge.validation import validate


def resolve(*args, **kwargs):
    """What the CLI does: resolve the values, then validate every section against its registry."""
    return validate(resolve_values(*args, **kwargs))


def _leaf_fields(obj=None, prefix=""):
    """{"train.steps": int, ...} for every non-section field of the config schema."""
    obj = Config() if obj is None else obj
    hints = typing.get_type_hints(type(obj))
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_leaf_fields(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = hints[f.name]
    return out


LEAVES = _leaf_fields()
INT_KEYS = sorted(k for k, t in LEAVES.items() if t is int)
FLOAT_KEYS = sorted(k for k, t in LEAVES.items() if t is float)


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


# -- presets -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_and_validates(name):
    cfg = resolve(name)
    assert cfg.preset == name
    assert validate(cfg) is cfg
    # the preset's own values were applied on top of the defaults
    for section, values in PRESETS[name][1].items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{name}: {section}.{key}"


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown preset 'hnge'.*did you mean 'hinge'"):
        resolve("hnge")


def test_presets_are_independent_copies():
    a = preset_config("wgan-gp")
    a.loss.penalties["gp"] = 99.0
    a.optim.betas[0] = 0.7
    b = preset_config("wgan-gp")
    assert b.loss.penalties == {"gp": 10.0}
    assert b.optim.betas == [0.0, 0.9]


# -- overrides -------------------------------------------------------------------------------

def test_overrides_parse_yaml_values():
    cfg = resolve("vanilla", overrides=[
        "optim.lr_d=1e-4", "optim.betas=[0, 0.9]", "train.deterministic=true",
        "train.progress=false", "train.steps=123", "model.g.hidden=16", "data.name=ring8",
        "loss.penalties.gp=10", "model.init_gain=1"])
    assert cfg.optim.lr_d == 1e-4 and type(cfg.optim.lr_d) is float
    assert cfg.optim.betas == [0, 0.9]
    assert cfg.train.deterministic is True
    assert cfg.train.progress is False
    assert cfg.train.steps == 123 and type(cfg.train.steps) is int
    assert cfg.model.g == {"hidden": 16}
    assert cfg.data.name == "ring8"
    assert cfg.loss.penalties == {"gp": 10}
    assert cfg.model.init_gain == 1.0 and type(cfg.model.init_gain) is float


def test_later_overrides_win():
    cfg = resolve("vanilla", overrides=["train.steps=5", "train.steps=7"])
    assert cfg.train.steps == 7


def test_section_override_with_a_mapping():
    cfg = resolve("vanilla", overrides=["train={steps: 9, batch_size: 16}"])
    assert (cfg.train.steps, cfg.train.batch_size) == (9, 16)
    assert cfg.train.n_critic == 1  # untouched fields keep their value


def test_exponent_floats_in_free_form_mappings_are_numbers():
    cfg = resolve("wgan-gp", overrides=["loss.penalties.gp=1e-1"])
    assert cfg.loss.penalties["gp"] == 0.1


@pytest.mark.parametrize("text, key, suggestion", [
    ("seeed=1", "seeed", "seed"),
    ("dataa.name=ring8", "dataa", "data"),
    ("data.nmae=ring8", "data.nmae", "name"),
    ("model.z_dimm=3", "model.z_dimm", "z_dim"),
    ("loss.clipp=0.1", "loss.clipp", "clip"),
    ("optim.lr_dd=1", "optim.lr_dd", "lr_d"),
    ("train.stepz=10", "train.stepz", "steps"),
    ("train.n_critc=5", "train.n_critc", "n_critic"),
    ("eval.evry=5", "eval.evry", "every"),
])
def test_unknown_key_names_the_key_and_suggests(text, key, suggestion):
    with pytest.raises(ConfigError) as e:
        resolve("vanilla", overrides=[text])
    msg = str(e.value)
    assert f"'{key}'" in msg
    assert f"did you mean '{suggestion}'" in msg


def test_unknown_key_in_the_wrong_section_is_an_error():
    with pytest.raises(ConfigError) as e:
        resolve("vanilla", overrides=["train.lr_d=1e-4"])
    assert "'train.lr_d'" in str(e.value)
    assert "steps" in str(e.value)  # lists the keys that are valid there


def test_key_from_another_section_suggests_the_full_path():
    with pytest.raises(ConfigError, match=r"did you mean 'optim\.lr_d'"):
        resolve("vanilla", overrides=["train.lr_d=1e-4"])


def test_the_cli_help_example_override_is_valid():
    from ganforge.cli import build_parser
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    examples = re.findall(r"e\.g\.\s+--set\s+(\S+=\S+)", help_text)
    assert examples
    for ex in examples:
        resolve("vanilla", overrides=[ex.rstrip(")")])


@pytest.mark.parametrize("d, key, suggestion", [
    ({"train": {"stepz": 1}}, "train.stepz", "steps"),
    ({"optim": {"lr_dd": 1}}, "optim.lr_dd", "lr_d"),
    ({"modle": {}}, "modle", "model"),
])
def test_unknown_keys_in_a_mapping_are_errors(d, key, suggestion):
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}' \(did you mean '{suggestion}'"):
        Config.from_dict(d)


def test_unknown_generator_argument_suggests():
    with pytest.raises(ConfigError, match=r"model\.g\.hiden.*did you mean 'hidden'"):
        resolve("vanilla", overrides=["model.g.hiden=3"])
    with pytest.raises(ConfigError, match=r"model\.d\.widht.*did you mean 'width'"):
        resolve("dcgan", overrides=["model.d.widht=3"])


def test_reserved_net_arguments_are_refused():
    with pytest.raises(ConfigError, match=r"model\.g\.z_dim"):
        resolve("vanilla", overrides=["model.g.z_dim=3"])
    with pytest.raises(ConfigError, match=r"model\.d\.in_shape"):
        resolve("vanilla", overrides=["model.d.in_shape=[2]"])


@pytest.mark.parametrize("override, key", [
    ("train.steps=-5", "train.steps"),
    ("train.steps=0", "train.steps"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.n_critic=-1", "train.n_critic"),
    ("train.steps=abc", "train.steps"),
    ("train.steps=1.5", "train.steps"),
    ("train.progress=maybe", "train.progress"),
    ("train.ema=1.0", "train.ema"),
    ("train.ema=-0.1", "train.ema"),
    ("train.device=tpu", "train.device"),
    ("optim.betas=[0.5, 1.0]", "optim.betas"),
    ("optim.betas=[-0.1, 0.9]", "optim.betas"),
    ("optim.betas=[0.5]", "optim.betas"),
    ("optim.betas=0.5", "optim.betas"),
    ("optim.lr_g=-1e-4", "optim.lr_g"),
    ("optim.lr_d=0", "optim.lr_d"),
    ("optim.name=adamw", "optim.name"),
    ("loss.name=hingee", "loss.name"),
    ("loss.penalties.gpp=1", "loss.penalties"),
    ("loss.penalties.gp=-1", "loss.penalties.gp"),
    ("loss.penalties.gp=abc", "loss.penalties.gp"),
    ("loss.clip=-0.01", "loss.clip"),
    ("model.arch=dcgann", "model.arch"),
    ("model.init=xavierr", "model.init"),
    ("model.latent=gaussian", "model.latent"),
    ("model.z_dim=0", "model.z_dim"),
    ("model.g=5", "model.g"),
    ("data.name=ring9", "data.name"),
    ("data.name=folder:", "data.name"),
    ("data.channels=2", "data.channels"),
    ("data=3", "data"),
])
def test_bad_values_are_config_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        resolve("vanilla", overrides=[override])
    assert key in str(e.value)


@pytest.mark.parametrize("name, suggestion", [
    ("optim.name=adamw", "adam"), ("loss.name=hingee", "hinge"), ("model.arch=dcgann", "dcgan"),
    ("model.init=xavierr", "xavier"), ("loss.penalties.gpp=1", "gp"), ("data.name=ring9", "ring8")])
def test_unknown_names_suggest_registered_ones(name, suggestion):
    with pytest.raises(ConfigError, match=rf"did you mean '{suggestion}'"):
        resolve("vanilla", overrides=[name])


@pytest.mark.parametrize("override", ["optim.lr_g=.nan", "model.init_gain=.nan", "train.max_minutes=.nan",
                                      "loss.penalties.gp=.nan"])
def test_non_finite_numbers_are_config_errors(override):
    with pytest.raises(ConfigError):
        resolve("vanilla", overrides=[override])


@pytest.mark.parametrize("text", ["train.steps", "=3", "train..steps=3", ".steps=3"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError):
        apply_override(Config(), text)


# -- YAML in and out ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_yaml_round_trip(name):
    cfg = resolve(name, overrides=["train.steps=77", "optim.betas=[0.1, 0.2]", "model.g.hidden=16"]
                  if name.startswith("vanilla") else ["train.steps=77", "optim.betas=[0.1, 0.2]"])
    again = Config.from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert again is not cfg
    assert again.to_yaml() == cfg.to_yaml()
    validate(again)


def test_resolve_order_preset_then_file_then_overrides(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text(yaml.safe_dump({
        "preset": "wgan",
        "train": {"steps": 50, "batch_size": 16},
        "optim": {"lr_d": 3e-4},
    }))
    cfg = resolve(file=f, overrides=["train.steps=7"])
    assert cfg.preset == "wgan"
    assert cfg.loss.name == "wasserstein" and cfg.loss.clip == 0.01  # from the preset
    assert cfg.optim.name == "rmsprop" and cfg.optim.lr_g == 5e-5  # preset, not overridden
    assert cfg.optim.lr_d == 3e-4  # the file beats the preset
    assert cfg.train.batch_size == 16  # from the file
    assert cfg.train.steps == 7  # the override beats the file

    # an explicit preset argument beats the file's preset key; the file still applies on top
    cfg = resolve("hinge", file=f)
    assert cfg.preset == "hinge" and cfg.loss.name == "hinge"
    assert cfg.optim.lr_d == 3e-4 and cfg.train.steps == 50


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(file=bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve(file=lst)
    typo = tmp_path / "typo.yaml"
    typo.write_text("optim:\n  lr_dd: 1\n")
    with pytest.raises(ConfigError, match=r"optim\.lr_dd.*did you mean 'lr_d'"):
        resolve(file=typo)


# -- property tests ------------------------------------------------------------------------------

_KEYS = st.one_of(
    st.sampled_from(sorted(LEAVES) + ["data", "model", "train", "model.g.hidden", "loss.penalties.gp",
                                      "model.g.x.y", "train.steps.x"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.0123456789", min_size=0, max_size=20),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    st.text(max_size=20),
    # integers stay below float range: 10**400 into a float field is a known bug with its own
    # xfail test below, and would otherwise make this property fail at random
    st.integers(min_value=-10 ** 300, max_value=10 ** 300).map(str),
    st.floats().map(repr),
    st.sampled_from(["true", "false", "null", "~", ".nan", ".inf", "-.inf", "[0, 0.9]", "[]", "{}",
                     "{a: 1}", "[[1]]", "1e-4", "1e3", "1e400", "2020-01-01", "12:30:00", "'quoted'", "!!binary aGk=",
                     "!!python/object:os.system", "&a [*a]", "[1, 2", "{{", "*x", "a=b", " 3 "]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=_KEYS, value=_VALUES, preset=st.sampled_from(["vanilla", "wgan-gp"]))
def test_override_succeeds_or_raises_config_error(key, value, preset):
    cfg = preset_config(preset)
    try:
        apply_override(cfg, f"{key}={value}")
        validate(cfg)
    except ConfigError:
        pass  # any other exception type fails the test


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(INT_KEYS), value=st.integers(min_value=-10 ** 30, max_value=10 ** 30))
def test_int_overrides_land_as_ints(key, value):
    cfg = Config()
    apply_override(cfg, f"{key}={value}")
    got = _get(cfg, key)
    assert type(got) is int and got == value


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(FLOAT_KEYS),
       value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10 ** 6, 10 ** 6)))
def test_float_overrides_land_as_floats(key, value):
    cfg = Config()
    apply_override(cfg, f"{key}={value!r}")
    got = _get(cfg, key)
    assert type(got) is float and got == float(value)


def test_huge_integer_into_a_float_field_is_a_config_error():
    with pytest.raises(ConfigError):
        apply_override(Config(), "optim.lr_g=1" + "0" * 400)


def test_int_and_float_field_lists_are_not_empty():
    # guards the property tests above against a schema change that would leave them vacuous
    assert "train.steps" in INT_KEYS and "seed" in INT_KEYS
    assert "optim.lr_d" in FLOAT_KEYS and "train.ema" in FLOAT_KEYS
    assert not math.isnan(Config().optim.lr_d)
