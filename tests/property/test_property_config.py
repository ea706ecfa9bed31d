"""Properties of the config loader over overrides hypothesis invents.

* Any ``--set KEY=VALUE`` either loads or raises :class:`ConfigError`, never another exception, and every
  problem line names the key the user set (or the part of it that is wrong); a config that loads holds
  finite numbers only.
* Overrides typed like the keys they set: every problem names one of the keys set (the defaults are valid,
  so each problem was caused by an override), and a config that loads survives the trip through the
  effective-config YAML of a run directory unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atft.config import Config, build_config, dump_config, load_config
from atft.errors import ConfigError

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


DEFAULTS = _leaves(Config().model_dump(mode="json"))
SECTIONS = sorted({k.rsplit(".", 1)[0] for k in DEFAULTS if "." in k})
NAME = st.from_regex(r"[a-z][a-z_]{0,7}", fullmatch=True)

KEYS = st.one_of(
    st.sampled_from(sorted(DEFAULTS)),
    st.sampled_from(SECTIONS),
    st.tuples(st.sampled_from(SECTIONS), NAME).map(".".join),  # a typo inside a real section
    st.tuples(st.sampled_from(sorted(DEFAULTS)), NAME).map(".".join),  # a key under a value
    st.lists(NAME, min_size=1, max_size=3).map(".".join),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAME, inner, max_size=3))
EDGES = st.sampled_from(
    [".inf", "-.inf", ".nan", "1e999", "-1", "0", "[]", "{}", "~", "''", "[1, [2]]", "!!binary AA=="]
)
VALUE_TEXT = st.one_of(
    VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()), st.text(max_size=12), EDGES
)


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _names_one_of(problem: str, keys: list[str]) -> bool:
    return any(p in problem for key in keys for p in _prefixes(key))


@SETTINGS
@given(key=KEYS, value=VALUE_TEXT)
def test_any_override_loads_or_names_its_key(key: str, value: str) -> None:
    try:
        cfg = load_config(None, [f"{key}={value}"], environ={})
    except ConfigError as exc:
        assert exc.problems, "a ConfigError carries at least one problem"
        for problem in exc.problems:
            assert _names_one_of(problem, [key]), f"--set {key}={value}: {problem!r} does not name the key"
        return
    numbers = [v for v in _leaves(cfg.model_dump()).values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers), f"--set {key}={value} loaded a non-finite number"


FLOAT_KEYS = sorted(k for k, v in DEFAULTS.items() if isinstance(v, float))


@SETTINGS
@given(key=st.sampled_from(FLOAT_KEYS), value=st.sampled_from([".inf", "-.inf", ".nan", "1e999"]))
def test_non_finite_numbers_are_refused_by_every_float_key(key: str, value: str) -> None:
    """A bare ``ge=0`` bound lets ``.inf`` through; the loader must not (it would poison the run later)."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"{key}={value}"], environ={})
    assert any(p.startswith(f"{key} = ") for p in info.value.problems), info.value.problems


@SETTINGS
@given(text=st.text(max_size=30))
def test_any_override_text_loads_or_raises_config_error(text: str) -> None:
    """Not even KEY=VALUE: anything a shell can pass to --set."""
    try:
        load_config(None, [text], environ={})
    except ConfigError as exc:
        assert exc.problems


def _typed(default: Any) -> st.SearchStrategy[Any]:
    """Values of the default's type, over a range wide enough to cross every bound some of the time."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-2, 400)
    if isinstance(default, float):
        return st.floats(-1.0, 500.0, allow_nan=False) | st.sampled_from([0.0, 1e-4, 0.5, 1.0])
    if isinstance(default, list) and default and isinstance(default[0], float):
        return st.lists(st.floats(0.0, 1.0), min_size=0, max_size=4)
    if isinstance(default, list):
        return st.lists(st.integers(0, 30), min_size=0, max_size=4) | st.just(default)
    if default is None:
        return st.none() | st.integers(0, 40)
    return st.just(default) | st.text(max_size=6)


TYPED = st.sampled_from(sorted(DEFAULTS)).flatmap(lambda k: st.tuples(st.just(k), _typed(DEFAULTS[k])))


@settings(SETTINGS, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(overrides=st.lists(TYPED, min_size=1, max_size=4, unique_by=lambda kv: kv[0]))
def test_typed_overrides_name_their_keys_and_round_trip(overrides: list[tuple[str, Any]], tmp_path: Path) -> None:
    sets = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in overrides]
    keys = [k for k, _ in overrides]
    try:
        cfg = load_config(None, sets, environ={})
    except ConfigError as exc:
        for problem in exc.problems:
            assert _names_one_of(problem, keys), f"{sets}: {problem!r} names none of the keys set"
        return
    for key, value in overrides:  # what was set is what the effective config holds
        node: Any = cfg.model_dump(mode="json")
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    text = dump_config(cfg)
    assert build_config(yaml.safe_load(text)).model_dump() == cfg.model_dump()  # (== would compare sources too)
    path = tmp_path / "effective.yaml"
    path.write_text(text)
    assert dump_config(load_config(path, environ={})) == text
