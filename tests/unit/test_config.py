from pathlib import Path

import pytest
import yaml

from atft.config import ABSENT, Config, config_changes, config_sources, dump_config, load_config, parse_override
from atft.errors import ConfigError

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))


def test_ships_the_three_configs() -> None:
    assert {p.stem for p in CONFIGS} >= {"debug", "demo", "prod-20ep"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert load_config(path) == cfg  # deterministic


def test_prod_config_is_the_a100_run() -> None:
    cfg = load_config(Path(CONFIGS[0]).parent / "prod-20ep.yaml")
    # auto: bf16 on the A100/H100 it is meant for (atft.train.runtime.resolve_precision), fp32 elsewhere
    assert (cfg.model.hidden_size, cfg.train.epochs, cfg.train.precision, cfg.train.device) == (256, 20, "auto", "cuda")


def test_demo_config_documents_every_key() -> None:
    """demo.yaml is the reference: it sets every key of the tree, so loading it changes nothing unknown."""
    import yaml

    demo = yaml.safe_load((Path(CONFIGS[0]).parent / "demo.yaml").read_text())

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in tree.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return out

    assert keys(demo) == keys(Config().model_dump())


def test_demo_config_is_what_atft_train_runs_without_one() -> None:
    """``atft train`` with no --config trains on the defaults; demo.yaml documents them, value for value."""
    assert load_config(Path(CONFIGS[0]).parent / "demo.yaml").model_dump() == Config().model_dump()


def test_overrides_apply_in_order_and_parse_yaml() -> None:
    cfg = load_config(None, ["train.lr=1e-4", "data.horizons=[1, 5]", "model.graph.enabled=false", "train.lr=2e-4"])
    assert cfg.train.lr == 2e-4
    assert cfg.data.horizons == [1, 5]
    assert cfg.model.graph.enabled is False


def test_all_errors_reported_at_once_naming_key_value_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: -1\n  precision: fp8\n  epoch: 3\nmodel:\n  hidden_size: big\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "train.lr = -1" in text and "greater than 0" in text
    assert "train.precision = 'fp8'" in text and "'fp32' or 'bf16'" in text
    assert "train.epoch: unknown key" in text and "epochs" in text  # lists the allowed keys
    assert "model.hidden_size = 'big'" in text
    assert str(path) in str(info.value)


def test_unknown_section_and_override_key_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"trian: unknown key; allowed keys here: baselines, contract, data"):
        load_config(None, ["trian.lr=1"])


def test_cross_key_rules() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["split.purge_days=5", "split.n_folds=2", "split.fold=3", "model.quantiles=[0.9, 0.1]"])
    text = "\n".join(info.value.problems)
    assert "split.purge_days = 5: must be >= the longest horizon (20)" in text
    assert "split.fold = 3: allowed 0..1 or -2..-1 (split.n_folds = 2)" in text
    assert "model.quantiles" in text


@pytest.mark.parametrize("text", ["lr", "=3", "a..b=1", "train.lr=[1"])
def test_malformed_override_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        load_config(None, [text])


def test_parse_override_reads_yaml_scalars() -> None:
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=x") == ("a", "x")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.lr=3e-4", "synth.n_stocks=77"])
    path = tmp_path / "effective.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path).model_dump() == cfg.model_dump()


def test_environment_switches_sit_between_file_and_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("health:\n  grad_monitor:\n    every: 10\n    warn_norm: 1.0e-6\nloss:\n  dispersion: 0.5\n")
    env = {"GRAD_MONITOR_EVERY": "20", "VARIANCE_PENALTY_WEIGHT": "2.5", "ENABLE_ENCODER_GRAD_HOOKS": "false"}
    cfg = load_config(path, ["loss.dispersion=3.0"], environ=env)
    assert cfg.health.grad_monitor.every == 20  # environment beats the file
    assert cfg.health.grad_monitor.warn_norm == 1e-6  # file, untouched
    assert cfg.loss.dispersion == 3.0  # --set beats the environment
    assert cfg.health.grad_monitor.encoder_hooks is False
    sources = config_sources(cfg)
    assert sources["health.grad_monitor.every"] == "environment GRAD_MONITOR_EVERY"
    assert sources["health.grad_monitor.warn_norm"] == f"file {path}"
    assert sources["loss.dispersion"] == "--set"
    assert sources["train.lr"] == "default"


def test_unparsable_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"every = 'often'.*\(set by environment variable GRAD_MONITOR_EVERY\)"):
        load_config(None, environ={"GRAD_MONITOR_EVERY": "often"})
    with pytest.raises(ConfigError, match=r"environment variable DEGENERACY_RESET_SCALE='\[1' .*not a parsable value"):
        load_config(None, environ={"DEGENERACY_RESET_SCALE": "[1"})


def test_a_key_a_stored_config_lacks_is_a_change_only_off_its_default() -> None:
    stored = yaml.safe_load(dump_config(load_config(None, ["train.lr=3e-4"])))
    del stored["loss"]["target"]  # as written by an atft that had no loss.target yet
    del stored["health"]["signal"]  # a whole section added since
    assert config_changes(stored, load_config(None, ["train.lr=3e-4"])) == {}
    assert config_changes(stored, load_config(None, ["train.lr=3e-4", "loss.target=rank"])) == {
        "loss.target": (ABSENT, "rank")
    }
    assert config_changes(stored, load_config(None)) == {"train.lr": (3e-4, 1e-3)}
    stored["train"]["retired_option"] = 1  # a key removed since is a change, whatever its value
    assert config_changes(stored, load_config(None, ["train.lr=3e-4"])) == {"train.retired_option": (1, ABSENT)}
