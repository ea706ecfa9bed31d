"""One typed configuration tree, validated at load.

A run is described by a YAML file plus dotted overrides (``--set train.lr=1e-4``). Loading collects every
problem at once -- unknown keys, wrong types, out-of-range values, inconsistent combinations -- and raises
one :class:`~atft.errors.ConfigError` whose lines each name the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from atft.errors import ConfigError

# Switches operators already set as environment variables, and the config key each one sets.
ENVIRONMENT = {
    "ENABLE_GRAD_MONITOR": "health.grad_monitor.enabled",
    "GRAD_MONITOR_EVERY": "health.grad_monitor.every",
    "GRAD_MONITOR_WARN_NORM": "health.grad_monitor.warn_norm",
    "ENABLE_ENCODER_GRAD_HOOKS": "health.grad_monitor.encoder_hooks",
    "DEGENERACY_RESET_SCALE": "health.degeneracy.reset_scale",
    "VARIANCE_PENALTY_WEIGHT": "loss.dispersion",
}

MAX_DEPTH = 16
"""Deepest nesting a config value may have: the tree itself is 3 levels deep, a value (a list) one more."""
MAX_VALUES = 10_000
"""Most values (mappings, lists and scalars, each alias counted again) a config may expand to. A YAML
alias bomb ("billion laughs") is a few hundred bytes that expand to millions of values; it is refused
here, before anything walks or prints the expansion."""
MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (1 MiB; the documented demo.yaml is about 6 KB)."""
SHOWN_CHARS = 200
"""A value quoted in an error message is cut to this many characters."""

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    # allow_inf_nan=False: a ``.inf`` or ``.nan`` passes a bare ``ge=0`` bound and would poison the run later.
    # strict=True: no silent coercion -- ``epochs: true`` is not 1, ``epochs: 2.5`` is not 2, ``lr: "0.1"`` is
    # not 0.1 (an int is still a float: ``lr: 1`` is 1.0).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False, strict=True)


class DataConfig(_Section):
    """Where the panel comes from and how it is served, one trading day at a time."""

    path: str | None = Field(None, description="feature panel (Parquet); null = the embedded synthetic panel")
    horizons: list[PositiveInt] = Field([1, 5, 10, 20], min_length=1, description="forward-return horizons")
    lookback: PositiveInt = Field(20, description="days of history per sample (T)")
    min_stocks_per_day: Annotated[int, Field(ge=2)] = Field(20, description="days with fewer are dropped")
    max_stocks_per_batch: PositiveInt = Field(4096, description="a larger day is split into chunks")
    num_workers: NonNegInt = Field(0, description="DataLoader worker processes (spawn)")


class SynthConfig(_Section):
    """The embedded synthetic market (see ``atft.data.synth`` for the planted signal)."""

    n_stocks: Annotated[int, Field(ge=10)] = 300
    n_days: Annotated[int, Field(ge=120)] = 900
    n_sectors: PositiveInt = 10
    n_extra: NonNegInt = Field(4, description="extra per-stock columns beyond the planted flow signal")
    seed: int = 7


class FeatureConfig(_Section):
    """Feature builder: cross-sectional robust z-scores per date, clipped."""

    clip: Annotated[float, Field(gt=0)] = 5.0
    vol_scaled_returns: bool = Field(
        False, description="also build ret_per_vol_<k>d: the k-day log return over vol_60d * sqrt(k), k = 1, 5, 20, 60"
    )
    long_memory: bool = Field(
        False,
        description="also build ret_120d, mom_250_20d (the 12-1 month return) and dd_high_250d / up_low_250d "
        "(the distance from the 250-day high and low)",
    )


class GraphConfig(_Section):
    """Per-date stock graph from trailing returns (``atft.data.graph``)."""

    window: Annotated[int, Field(ge=5)] = 60
    halflife: Annotated[float, Field(gt=0)] = 30.0
    shrinkage: Fraction = 0.1
    min_abs_corr: Fraction = 0.3
    top_k: PositiveInt = 20
    sector_top_k: NonNegInt = Field(
        0, description="also link each stock to its k most correlated peers in its own sector, however weak; 0 = off"
    )
    min_observations: Annotated[int, Field(ge=3)] = 40
    market_neutral: bool = Field(
        True, description="correlate returns net of each date's cross-sectional mean return (the market mode)"
    )
    cache_size: NonNegInt = Field(2048, description="dates whose graphs are kept in memory")


class ContractConfig(_Section):
    """Thresholds of the data contract (``atft.data.contract``)."""

    max_dead_date_fraction: Fraction = Field(0.5, description="a feature constant on more dates is dead")
    leak_abs_ic: Fraction = Field(0.3, description="|mean daily IC| with a forward target that means a leak")
    max_zero_label_fraction: Fraction = Field(0.05, description="share of labels exactly 0 that means filling")
    max_thin_day_fraction: Fraction = Field(0.2, description="share of days under min_stocks_per_day allowed")
    max_missing_feature_fraction: Fraction = Field(0.5, description="share of NaN cells a feature may have")


class SplitConfig(_Section):
    """Walk-forward folds over the common calendar: train | purge | val | embargo | test (``atft.data.splits``)."""

    test_window: Literal["year", "days"] = Field(
        "year", description="a fold's test window: a calendar year, or split.test_days trading days"
    )
    scheme: Literal["expanding", "rolling"] = Field(
        "expanding", description="training from the first date, or only the split.train_days days before val"
    )
    n_folds: PositiveInt | None = Field(
        None, description="keep the newest n folds; null = every year that fits (year) or 1 (days)"
    )
    fold: int = Field(-1, description="the fold `atft train` trains: 0 = the oldest, -1 = the newest")
    val_days: PositiveInt = 120
    test_days: PositiveInt = Field(120, description="the test window with test_window: days")
    min_test_days: PositiveInt = Field(20, description="a calendar year with fewer trading days is no test window")
    min_train_days: PositiveInt = 250
    train_days: PositiveInt | None = Field(None, description="the training window with scheme: rolling")
    purge_days: int | None = Field(None, description="gap train->val; null = longest horizon")
    embargo_days: int | None = Field(None, description="gap val->test; null = longest horizon")


class ModelGraphConfig(_Section):
    enabled: bool = True
    heads: list[PositiveInt] = Field([8, 4], min_length=1)


class ModelConfig(_Section):
    """ATFT-GAT-FAN sizes and switches (built by ``atft.model``)."""

    hidden_size: PositiveInt = 64
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    attention_heads: PositiveInt = 4
    causal_attention: bool = True
    norm: Literal["layernorm", "fan"] = "layernorm"
    quantiles: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field([0.05, 0.25, 0.5, 0.75, 0.95], min_length=1)
    graph: ModelGraphConfig = ModelGraphConfig()


class LossConfig(_Section):
    """Weights of the loss terms (``atft.train.losses``); every term is logged separately."""

    pinball: Annotated[float, Field(ge=0.0)] = 1.0
    rank: Annotated[float, Field(ge=0.0)] = 0.5
    sharpe: Annotated[float, Field(ge=0.0)] = 0.1
    dispersion: Annotated[float, Field(ge=0.0)] = 1.0
    dispersion_floor: Annotated[float, Field(ge=0.0)] = Field(0.05, description="min per-day std(pred)/std(target)")
    listwise: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="ListNet-style KL of the day's top-one distributions of target ranks and forecasts"
    )
    horizon_weights: list[Annotated[float, Field(ge=0.0)]] | None = Field(
        None, description="one weight per horizon; null = proportional to 1/sqrt(h), summing to 1"
    )
    target: Literal["return", "rank", "sector", "rank_sum"] = Field(
        "return",
        description="what the terms fit: the forward return, its rank within the day scaled to unit std, "
        "its excess over the mean of the stock's sector that day, or (training days only) the rank of the sum "
        "over the horizon's days of each day's ranked 1-day return (atft.train.targets; its forecasts are "
        "scores in those units, not returns)",
    )


class TrainConfig(_Section):
    """Optimisation and the device it runs on."""

    epochs: PositiveInt = 4
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4
    warmup_steps: NonNegInt = 100
    grad_clip: Annotated[float, Field(gt=0.0)] = 1.0
    weight_average: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        0.998, description="decay of the weight EMA that is evaluated and kept instead of the raw weights; null = off"
    )
    accumulate_days: PositiveInt = 1
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 on a CUDA device with native bf16 (A100/H100), else fp32 (atft.train.runtime)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: PositiveInt = Field(25, description="optimizer steps between logged training records")
    tensorboard: bool = Field(False, description="also write TensorBoard scalars to RUN_DIR/tensorboard")
    checkpoint_every: PositiveInt = Field(
        200, description="optimizer steps between checkpoints (also one at every epoch end and on SIGTERM)"
    )
    keep_checkpoints: PositiveInt = Field(3, description="newest checkpoints kept in RUN_DIR/checkpoints")
    select_epoch: Literal["best", "last"] = Field(
        "best", description="best: the epoch with the best select_metric on val; last: the final one, unpicked"
    )
    select_metric: Literal["rank_ic", "ic", "sharpe"] = Field("rank_ic", description="picks the best epoch on val")
    select_horizon: PositiveInt = Field(5, description="horizon (days) of select_metric; one of data.horizons")
    cost_bps: Annotated[float, Field(ge=0.0)] = Field(10.0, description="one-way cost for net Sharpe, bps")


class ReportConfig(_Section):
    """Objectives of the validation report: each PASS/FAIL is measured in the run against these thresholds."""

    horizon: PositiveInt = Field(5, description="horizon (days) the objectives are judged at")
    min_rank_ic_t: float = Field(
        2.0, description="test RankIC must be > 0 with at least this overlap-correct t-statistic (about p < 0.05)"
    )
    min_paired_t: float = Field(
        2.0, description="'beats X': the paired daily RankIC difference must exceed this many overlap-correct SEs"
    )
    min_dispersion_ratio: Annotated[float, Field(ge=0.0)] = Field(0.02, description="test dispersion ratio floor")
    beat_baselines: list[Literal["momentum", "reversal", "ridge", "lightgbm"]] = Field(
        ["momentum", "reversal", "ridge", "lightgbm"], description="baselines the model must beat, paired by day"
    )
    min_oracle_fraction: Annotated[float, Field(gt=0.0)] | None = Field(
        0.8, description="panels with an oracle (synthetic): test RankIC / the oracle's must reach this; null = off"
    )


class LightGBMConfig(_Section):
    """The gradient-boosted-trees baseline (``atft.baselines.trees.TreeParams`` says why each default)."""

    enabled: bool = True
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    num_leaves: Annotated[int, Field(ge=2)] = 15
    min_data_in_leaf: PositiveInt = 200
    max_rounds: PositiveInt = 500
    early_stopping_rounds: PositiveInt = Field(50, description="rounds without a better validation loss")
    max_train_rows: PositiveInt = Field(2_000_000, description="more training rows are subsampled (seeded)")
    num_threads: NonNegInt = Field(0, description="0 = torch's thread count, at most one per 100k rows")


class BaselinesConfig(_Section):
    """Baselines fitted per fold on its training days and scored beside the model (``atft.baselines``)."""

    ridge_lambda: Annotated[float, Field(gt=0.0)] = Field(1.0, description="ridge penalty, times the row count")
    lightgbm: LightGBMConfig = LightGBMConfig()


class GradMonitorConfig(_Section):
    """Per-component gradient norms, every ``every`` optimizer steps and at the first."""

    enabled: bool = True
    every: PositiveInt = 50
    warn_norm: Annotated[float, Field(ge=0.0)] = Field(1e-7, description="a component under this is vanishing")
    max_norm: Annotated[float, Field(gt=0.0)] = Field(1e4, description="a component over this is exploding")
    encoder_hooks: bool = Field(True, description="activation-gradient hooks on the projected/normalised features")
    action: Literal["warn", "abort"] = Field("warn", description="what a vanishing/exploding gradient does")


class DegeneracyConfig(_Section):
    """Per-horizon collapse guard on per-day std(pred)/std(target), smoothed by an EMA."""

    min_ratio: Annotated[float, Field(ge=0.0)] = Field(0.01, description="EMA ratio under this is a bad check")
    ema: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    every: PositiveInt = Field(25, description="optimizer steps between checks")
    warmup_steps: NonNegInt = 50
    patience: PositiveInt = Field(3, description="consecutive bad checks before acting")
    action: Literal["reset", "abort", "warn"] = "reset"
    reset_scale: Annotated[float, Field(gt=0.0)] = Field(0.01, description="std of the noise added to the heads")


class SignalConfig(_Section):
    """Learning-signal monitor: training RankIC per horizon (a rolling warning, an epoch-end verdict), dead inputs."""

    window: Annotated[int, Field(ge=10)] = Field(
        200,
        description="training days in the rolling RankIC (weak_learning_signal, a warning); also the fewest days "
        "with a RankIC an epoch needs for its no_learning_signal verdict",
    )
    warmup_steps: NonNegInt = Field(300, description="optimizer steps before the rolling check")
    z: Annotated[float, Field(gt=0.0)] = Field(
        2.0, description="one-sided bar of both checks: mean < z * its overlap-correct error is no signal"
    )
    min_periods: PositiveInt = Field(
        100,
        description="independent periods (an epoch's days / h) a horizon needs for its no_learning_signal verdict to "
        "be critical on its own; with fewer its failure is learning_signal_unconfirmed, a warning, unless a "
        "horizon with enough fails too",
    )
    action: Literal["abort", "warn"] = Field(
        "warn", description="what an epoch's no_learning_signal does (the rolling warning never aborts)"
    )
    dead_gate: Annotated[float, Field(ge=0.0)] = Field(1e-4, description="mean selection weight under this is dead")


class HealthConfig(_Section):
    grad_monitor: GradMonitorConfig = GradMonitorConfig()
    degeneracy: DegeneracyConfig = DegeneracyConfig()
    signal: SignalConfig = SignalConfig()


class FaultsConfig(_Section):
    """Fire drills: inject one failure on purpose to prove its detector fires. All off by default."""

    dead_encoder: bool = Field(False, description="detach the temporal encoder's output: no gradient reaches it")
    collapse_head: bool = Field(False, description="force the forecasts to a constant: degeneracy")
    dead_feature: str | None = Field(None, description="zero this feature (name without feat_): dead input")
    shuffle_labels: bool = Field(False, description="shuffle labels across days: no learning signal")
    nan_at_step: PositiveInt | None = Field(None, description="make the loss NaN at this optimizer step")


class Config(_Section):
    """The whole run. Every key is documented in ``configs/demo.yaml``."""

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    seed: int = 0
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    features: FeatureConfig = FeatureConfig()
    graph: GraphConfig = GraphConfig()
    contract: ContractConfig = ContractConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    health: HealthConfig = HealthConfig()
    faults: FaultsConfig = FaultsConfig()
    report: ReportConfig = ReportConfig()

    @property
    def purge_days(self) -> int:
        """Days between the last training date and the first validation date."""
        return self.split.purge_days if self.split.purge_days is not None else max(self.data.horizons)

    @property
    def embargo_days(self) -> int:
        """Days between the last validation date and the first test date."""
        return self.split.embargo_days if self.split.embargo_days is not None else max(self.data.horizons)


def _cross_checks(cfg: Config) -> list[str]:
    """Rules that span keys. Each message names the keys involved and the allowed values."""
    problems = []
    longest = max(cfg.data.horizons)
    if len(set(cfg.data.horizons)) != len(cfg.data.horizons) or cfg.data.horizons != sorted(cfg.data.horizons):
        problems.append(f"data.horizons = {shown(cfg.data.horizons)}: must be strictly increasing without repeats")
    for key, value in (("split.purge_days", cfg.split.purge_days), ("split.embargo_days", cfg.split.embargo_days)):
        if value is not None and value < longest:
            problems.append(f"{key} = {value}: must be >= the longest horizon ({longest}) so labels cannot leak")
    if cfg.split.n_folds is not None and not -cfg.split.n_folds <= cfg.split.fold < cfg.split.n_folds:
        n = cfg.split.n_folds
        problems.append(f"split.fold = {cfg.split.fold}: allowed 0..{n - 1} or -{n}..-1 (split.n_folds = {n})")
    if cfg.split.scheme == "rolling" and cfg.split.train_days is None:
        problems.append("split.scheme = 'rolling': needs split.train_days, the length of the training window")
    if cfg.split.train_days is not None and cfg.split.train_days < cfg.split.min_train_days:
        problems.append(
            f"split.train_days = {cfg.split.train_days}: must be >= split.min_train_days ({cfg.split.min_train_days})"
        )
    if cfg.graph.min_observations > cfg.graph.window:
        problems.append(
            f"graph.min_observations = {cfg.graph.min_observations}: must be <= graph.window ({cfg.graph.window})"
        )
    qs = cfg.model.quantiles
    if qs != sorted(qs) or len(set(qs)) != len(qs):
        problems.append(f"model.quantiles = {shown(qs)}: must be strictly increasing")
    if cfg.loss.horizon_weights is not None and len(cfg.loss.horizon_weights) != len(cfg.data.horizons):
        problems.append(
            f"loss.horizon_weights = {shown(cfg.loss.horizon_weights)}: "
            f"needs one weight per horizon {shown(cfg.data.horizons)}"
        )
    if cfg.loss.target == "rank_sum" and 1 not in cfg.data.horizons:
        problems.append(
            f"loss.target = 'rank_sum': sums 1-day ranks, so data.horizons {shown(cfg.data.horizons)} must include 1"
        )
    for key, h in (("train.select_horizon", cfg.train.select_horizon), ("report.horizon", cfg.report.horizon)):
        if h not in cfg.data.horizons:
            problems.append(f"{key} = {h}: not one of data.horizons {shown(cfg.data.horizons)}")
    hidden = cfg.model.hidden_size
    for key, heads in [
        ("model.attention_heads", [cfg.model.attention_heads]),
        ("model.graph.heads", cfg.model.graph.heads),
    ]:
        if any(hidden % h for h in heads):
            problems.append(
                f"{key} = {shown(heads) if len(heads) > 1 else heads[0]}: must divide model.hidden_size ({hidden})"
            )
    if cfg.data.min_stocks_per_day > cfg.data.max_stocks_per_batch:
        problems.append(
            f"data.min_stocks_per_day = {cfg.data.min_stocks_per_day}: must be <= data.max_stocks_per_batch "
            f"({cfg.data.max_stocks_per_batch})"
        )
    return problems


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (for listing the allowed keys)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARS` characters: a message quotes a value, never a megabyte."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that repeats a key: PyYAML keeps the last silently, so a
    second ``train:`` section would throw the first away without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"duplicate key {key.value!r}", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads ``1e-4`` (no dot) as text; YAML 1.2 and every user read it as a number.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml_text(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``, refusing what could exhaust the stack, memory or time of whoever reads it.

    Raises:
        ConfigError: naming ``where``: not valid YAML, nested deeper than :data:`MAX_DEPTH`, or expanding to
            more than :data:`MAX_VALUES` values (aliases counted at each use).
    """
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain values only
    except RecursionError:
        raise ConfigError(
            [f"{where}: nested too deeply to parse; a config is at most {MAX_DEPTH} levels deep"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML: {_yaml_problem(exc)}"]) from exc
    _bounded(loaded, where)
    return loaded


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser found and where (``duplicate key 'train' at line 3, column 1``)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return shown(str(exc))[1:-1]


def _bounded(tree: Any, where: str) -> None:
    """Walk ``tree`` without recursion, stopping at the first value too deep or past the value budget."""
    stack: list[tuple[Any, str, int]] = [(tree, "", 0)]
    count = 0
    while stack:
        node, key, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                [
                    f"{where}: expands to more than {MAX_VALUES} values (YAML aliases that repeat a value?); "
                    "a config has a few hundred"
                ]
            )
        if depth > MAX_DEPTH:
            raise ConfigError([f"{where}: {key or 'the top level'} is nested deeper than {MAX_DEPTH} levels"])
        if isinstance(node, dict):
            stack += [(v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, f"{key}[{i}]", depth + 1) for i, v in enumerate(node)]


def _describe(error: Any) -> str:
    """One line per pydantic error: dotted key, bad value, what is allowed."""
    loc = tuple(error["loc"])
    key = shown(".".join(str(p) for p in loc) or "<root>")[1:-1]
    if error["type"] == "extra_forbidden":
        owner = _section_at(loc)
        allowed = ", ".join(sorted(owner.model_fields)) if owner else "?"
        return f"{key}: unknown key; allowed keys here: {allowed}"
    return f"{key} = {shown(error.get('input'))}: {error['msg']}"


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError([f"--set {dotted}: '{part}' is a value, not a section"])
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=1e-4'`` -> ``('train.lr', 0.0001)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
        raise ConfigError([f"--set {shown(text)}: expected KEY=VALUE with a dotted key, e.g. train.lr=1e-4"])
    try:
        value = load_yaml_text(raw, f"--set {key.strip()}") if raw.strip() else None
    except ConfigError as exc:
        if "not valid YAML" not in exc.problems[0]:
            raise
        raise ConfigError([f"--set {key}: value {shown(raw)} is not valid YAML"]) from exc
    return key.strip(), value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a config file; a missing file, bad YAML or a non-mapping top level is a ConfigError."""
    try:
        if path.is_file() and (size := path.stat().st_size) > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {size} bytes; a config file is at most {MAX_CONFIG_BYTES}"], str(path))
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"], source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}); is it a config file?"], str(path)) from exc
    try:
        loaded = load_yaml_text(text, str(path))
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(path)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        problem = f"{path}: top level must be a mapping of sections, got {type(loaded).__name__}"
        raise ConfigError([problem], source=str(path))
    return loaded


def build_config(tree: dict[str, Any], source: str = "config", sources: Mapping[str, str] | None = None) -> Config:
    """Validate a plain dict into a :class:`Config`, collecting every problem (each naming its source)."""
    try:
        cfg = Config.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            origin = (sources or {}).get(".".join(str(p) for p in error["loc"]), "")
            suffix = (
                f" (set by {origin.replace('environment', 'environment variable')})"
                if origin.startswith("environment") or origin == "--set"
                else ""
            )
            problems.append(_describe(error) + suffix)
        raise ConfigError(problems, source=source) from None
    problems = _cross_checks(cfg)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested mapping under its dotted key."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        leaves |= _flat(value, f"{prefix}{key}.") if isinstance(value, Mapping) else {f"{prefix}{key}": value}
    return leaves


def _environment(environ: Mapping[str, str]) -> list[tuple[str, str, Any]]:
    """(variable, dotted key, value) for each operator switch set in the environment."""
    found, problems = [], []
    for var, key in ENVIRONMENT.items():
        if var in environ:
            try:
                found.append((var, key, load_yaml_text(environ[var], f"environment variable {var}")))
            except ConfigError:
                problems.append(f"environment variable {var}={shown(environ[var])} (for {key}): not a parsable value")
    if problems:
        raise ConfigError(problems, source="environment")
    return found


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path`` (or the defaults), then the environment switches, then ``--set`` overrides in order.

    Precedence: file < environment (``ENVIRONMENT``) < ``--set``. Every problem is collected and reported at
    once; a bad value that came from an environment variable names the variable. The result remembers
    where each value came from (``config_sources``).
    """
    tree: dict[str, Any] = read_yaml(Path(path)) if path is not None else {}
    sources = dict.fromkeys(_flat(tree), f"file {path}")
    for var, key, value in _environment(os.environ if environ is None else environ):
        _set_dotted(tree, key, value)
        sources[key] = f"environment {var}"
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
        sources[key] = "--set"
    cfg = build_config(tree, source=str(path) if path is not None else "config", sources=sources)
    cfg._sources = sources
    return cfg


def config_sources(cfg: Config) -> dict[str, str]:
    """Every leaf key of the effective config -> where its value came from (``default`` if nowhere)."""
    return {key: cfg._sources.get(key, "default") for key in _flat(cfg.model_dump(mode="json"))}


def dump_config(cfg: Config) -> str:
    """The effective config as YAML (written into every run directory)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


ABSENT = "<absent>"
"""How :func:`config_changes` shows a key that one side lacks."""


def config_changes(then: Mapping[str, Any], now: Config) -> dict[str, tuple[Any, Any]]:
    """Each dotted key whose value in a stored config ``then`` differs from ``now``'s: key -> (then, now).

    A run, a checkpoint and a validation store the config they started with; resuming, scoring or pooling
    them needs the same one. A key that ``then`` lacks while ``now`` holds its default is not a change:
    atft adds an option only with a default that keeps what it did before, so work an older atft started
    continues under a newer one (a digest of the whole config would refuse it). A key that only ``then``
    has, an option removed since, is a change.
    """
    old, new = _flat(then), _flat(now.model_dump(mode="json"))
    default = _flat(Config().model_dump(mode="json"))
    changes: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(old) | set(new)):
        if key not in old and key in default and new[key] == default[key]:
            continue
        if old.get(key, ABSENT) != new.get(key, ABSENT):
            changes[key] = (old.get(key, ABSENT), new.get(key, ABSENT))
    return changes
