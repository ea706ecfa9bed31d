"""The embedded synthetic panel is cached by everything that shapes it, its generator's code included."""

from __future__ import annotations

from pathlib import Path

import pytest

from atft.config import load_config
from atft.data import synth
from atft.train.job import synthetic_panel_path

ROOT = Path(__file__).resolve().parents[2]


def test_cache_key_covers_settings_and_generator_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATFT_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config(ROOT / "configs" / "debug.yaml")
    first = synthetic_panel_path(cfg)
    assert first.exists() and synthetic_panel_path(cfg) == first
    first_written = first.stat().st_mtime_ns
    reseeded = synthetic_panel_path(load_config(ROOT / "configs" / "debug.yaml", ["synth.seed=99"]))
    assert reseeded != first and reseeded.exists()
    edited = tmp_path / "synth.py"
    edited.write_bytes(Path(synth.__file__).read_bytes() + b"\n# a changed generator\n")
    monkeypatch.setattr(synth, "__file__", str(edited))
    regenerated = synthetic_panel_path(cfg)
    assert regenerated not in (first, reseeded) and regenerated.exists()
    assert first.stat().st_mtime_ns == first_written, "the older panel is left alone, never rewritten"
