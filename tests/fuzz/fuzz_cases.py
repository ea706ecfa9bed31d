"""Every case of the fuzz corpus: the fault it plants, the command that must refuse it, the words it must say.

Each entry maps a case name to ``(family, make)``; ``make(corpus)`` writes the case's inputs into
``corpus.dir(family, name)`` and returns the :class:`~fuzz_corpus.Invocation`. The expected words are the
ones a user needs to fix the input: the column or dotted key, and the fault.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from fuzz_corpus import (
    BASE_CONFIG,
    Corpus,
    Invocation,
    base_panel,
    base_prices,
    first_row_of_day,
    keep_days_with,
    make_dir,
    numbers,
    per_date,
    put,
    replace,
    scramble,
    swap_rows,
    truncate,
    with_key,
    write_bytes,
    write_table,
    write_yaml,
)

from atft.config import dump_config, load_config
from atft.data.panel import load_panel
from atft.train.checkpoint import save_checkpoint
from atft.train.setup import build_model

CASES: dict[str, tuple[str, Callable[[Corpus], Invocation]]] = {}
TablePatch = Callable[[pa.Table], pa.Table]


# --- panels: `atft data check PANEL` ---------------------------------------------------------------


def _check(c: Corpus, panel: Path, words: tuple[str, ...]) -> Invocation:
    return Invocation(["data", "check", str(panel), "--config", str(c.config)], words, names=panel)


def panel_case(name: str, patch: TablePatch, *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        return _check(c, write_table(c.dir("panels", name) / "panel.parquet", patch(base_panel())), words)

    CASES[f"panel_{name}"] = ("panels", make)


def panel_file_case(name: str, write: Callable[[Path], Path], *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        return _check(c, write(c.dir("panels", name)), words)

    CASES[f"panel_{name}"] = ("panels", make)


def _zero_filled(t: pa.Table) -> pa.Table:
    y = numbers(t, "target_5d")
    y[np.isnan(y)] = 0.0  # the tail, where no later price exists, filled with 0
    return replace(t, "target_5d", y.astype(np.float32))


def _thin(t: pa.Table) -> pa.Table:
    for day in range(0, 40, 2):
        t = keep_days_with(t, day, 5)
    return t


def _mostly_missing(t: pa.Table) -> pa.Table:
    x = numbers(t, "feat_f1")
    x[np.arange(x.size) % 5 != 0] = np.nan
    return replace(t, "feat_f1", pa.array(x.astype(np.float32), from_pandas=True))


panel_case("missing_return_column", lambda t: t.drop_columns(["return_1d"]), "'return_1d' is missing")
panel_case("missing_code_column", lambda t: t.drop_columns(["code"]), "'code' is missing")
panel_case("no_feature_columns", lambda t: t.drop_columns([n for n in t.column_names if n[:5] == "feat_"]), "feat_")
panel_case("missing_target_column", lambda t: t.drop_columns(["target_5d"]), "'target_5d' is missing", "[1]")
panel_case("feature_is_text", lambda t: replace(t, "feat_f1", [str(v) for v in numbers(t, "feat_f1")]), "feat_f1")
panel_case("market_is_text", lambda t: replace(t, "mkt_ret", ["x"] * t.num_rows), "'mkt_ret' has type string")
panel_case("feature_is_list", lambda t: replace(t, "feat_f0", [[1.0]] * t.num_rows), "'feat_f0' has type list")
panel_case("date_is_text", lambda t: replace(t, "date", [str(d) for d in t["date"].to_pylist()]), "'date'", "string")
panel_case("code_is_integer", lambda t: replace(t, "code", np.arange(t.num_rows)), "'code' has type int64")
panel_case("duplicate_key", lambda t: t.take(pa.array([0, *range(t.num_rows)])), "duplicate key (date, code)")
panel_case("unsorted_dates", lambda t: swap_rows(t, 0, first_row_of_day(t, 10)), "not sorted by date")
panel_case("unsorted_codes", lambda t: swap_rows(t, 0, 1), "not sorted by code")
panel_case("null_date", lambda t: put(t, "date", [3], None), "'date' has 1 null key")
panel_case("null_code", lambda t: put(t, "code", [3], None), "'code' has 1 null key")
panel_case("inf_feature", lambda t: put(t, "feat_f2", [7], float("inf")), "'feat_f2'", "infinite")
panel_case("neg_inf_target", lambda t: put(t, "target_1d", [7], float("-inf")), "'target_1d'", "infinite")
panel_case("inf_return", lambda t: put(t, "return_1d", [9], float("inf")), "'return_1d'", "infinite")
panel_case("inf_market", lambda t: put(t, "mkt_vol", slice(None), float("inf")), "'mkt_vol'", "infinite")
panel_case("market_differs_across_stocks", lambda t: put(t, "mkt_ret", [1], 9.0), "'mkt_ret'", "differs")
panel_case("dead_feature", lambda t: replace(t, "feat_f2", per_date(t, 1)), "'feat_f2' is dead")
panel_case("leaking_feature", lambda t: replace(t, "feat_f3", numbers(t, "target_5d") * 100), "'feat_f3' leaks")
panel_case("one_stock_day", lambda t: keep_days_with(t, 12, 1), "1 date(s) with a single stock, first 2021-01-16")
panel_case("thin_days", _thin, "too few stocks per day", "min_stocks_per_day")
panel_case("zero_filled_label", _zero_filled, "'target_5d'", "exactly 0")
panel_case("no_labels", lambda t: put(t, "target_1d", slice(None), None), "'target_1d' has no labels")
panel_case("mostly_missing_feature", _mostly_missing, "'feat_f1' is 80% missing")
panel_case("no_rows", lambda t: t.slice(0, 0), "no rows")
panel_case("duplicate_column", lambda t: t.append_column("feat_f0", t.column("feat_f1")), "'feat_f0'", "twice")


def _timed(t: pa.Table) -> pa.Table:
    stamps = t.column("date").cast(pa.timestamp("s")).to_numpy().copy()
    stamps[5] += np.timedelta64(9 * 3600 + 30 * 60, "s")  # 09:30 on one row
    return replace(t, "date", pa.array(stamps, pa.timestamp("s")))


def _midnight_utc_in_new_york(t: pa.Table) -> pa.Table:
    stamps = t.column("date").cast(pa.timestamp("s")).cast(pa.int64())
    return replace(t, "date", pa.array(stamps.to_numpy(), pa.timestamp("s", tz="America/New_York")))


panel_case("date_with_time_of_day", _timed, "column 'date'", "time of day", "at row 5")
panel_case("date_utc_midnight_zoned", _midnight_utc_in_new_york, "column 'date'", "time of day", "19:00:00")
panel_case(
    "code_is_binary", lambda t: replace(t, "code", [s.encode() for s in t["code"].to_pylist()]), "'code'", "binary"
)
panel_case("date_is_float", lambda t: replace(t, "date", np.arange(t.num_rows, dtype=float)), "'date' has type double")
panel_file_case("garbage_bytes", lambda d: write_bytes(d / "panel.parquet", bytes(range(256)) * 64), "parquet")
panel_file_case("empty_file", lambda d: write_bytes(d / "panel.parquet", b""), "parquet")
panel_file_case("truncated_parquet", lambda d: truncate(write_table(d / "panel.parquet", base_panel())), "parquet")
panel_file_case(
    "csv_named_parquet", lambda d: write_bytes(d / "panel.parquet", b"date,code\n2021-01-04,A\n"), "parquet"
)
panel_file_case("damaged_page", lambda d: scramble(write_table(d / "panel.parquet", base_panel())), "cannot read")
panel_file_case("missing_file", lambda d: d / "absent.parquet", "no such panel file")
panel_file_case("directory", lambda d: make_dir(d / "panel.parquet"), "not a file")


# --- configs: `atft data check BASE_PANEL --config BAD` and `--set` ----------------------------------


def config_case(name: str, tree: object, *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        path = write_yaml(c.dir("configs", name) / "config.yaml", tree)
        return Invocation(["data", "check", str(c.panel), "--config", str(path)], words, names=path)

    CASES[f"config_{name}"] = ("configs", make)


def set_case(name: str, sets: list[str], *words: str, names: str = "config", **env: str) -> None:
    """``--set`` overrides (or environment switches) on the base config; ``names``: the input the error names
    ("config" or "panel": that file; anything else: that text, e.g. the ``--set`` option or the variable)."""

    def make(c: Corpus) -> Invocation:
        c.dir("configs", name)
        argv = ["data", "check", str(c.panel), "--config", str(c.config)]
        argv += [a for s in sets for a in ("--set", s)]
        named = {"config": c.config, "panel": c.panel}.get(names, names)
        return Invocation(argv, words, names=named, env=env)

    CASES[f"config_{name}"] = ("configs", make)


def config_file_case(name: str, write: Callable[[Path], Path], *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        path = write(c.dir("configs", name))
        return Invocation(["data", "check", str(c.panel), "--config", str(path)], words, names=path)

    CASES[f"config_{name}"] = ("configs", make)


B = BASE_CONFIG
config_case("unknown_section", {**B, "trian": {"lr": 0.1}}, "trian: unknown key", "train")
config_case("unknown_key", with_key(B, "train.learning_rate", 0.1), "train.learning_rate: unknown key", "lr")
config_case("wrong_type", with_key(B, "train.epochs", "many"), "train.epochs = 'many'", "integer")
config_case("negative_lr", with_key(B, "train.lr", -0.001), "train.lr = -0.001", "greater than 0")
config_case("nan_lr", with_key(B, "train.lr", float("nan")), "train.lr = nan")
config_case("inf_weight_decay", with_key(B, "train.weight_decay", float("inf")), "train.weight_decay = inf", "finite")
config_case("horizons_unsorted", with_key(B, "data.horizons", [5, 1]), "data.horizons = [5, 1]", "increasing")
config_case("purge_shorter_than_horizon", with_key(B, "split.purge_days", 2), "split.purge_days = 2", "horizon")
config_case("heads_do_not_divide", with_key(B, "model.attention_heads", 3), "model.attention_heads = 3", "divide")
config_case("select_horizon_not_a_horizon", with_key(B, "train.select_horizon", 10), "train.select_horizon = 10")
config_case("quantiles_unsorted", with_key(B, "model.quantiles", [0.9, 0.1]), "model.quantiles", "increasing")
config_case("dropout_one", with_key(B, "model.dropout", 1.0), "model.dropout = 1.0", "less than 1")
config_case("section_is_scalar", with_key(B, "train", 5), "train = 5", "dictionary")
config_case("fold_out_of_range", with_key(B, "split.fold", 3), "split.fold = 3", "0..0")
config_case("min_stocks_over_cap", with_key(B, "data.min_stocks_per_day", 99), "data.min_stocks_per_day = 99")
config_case("top_level_list", [1, 2], "top level must be a mapping", "list")
config_file_case("yaml_syntax", lambda d: write_bytes(d / "c.yaml", b"data: [1, 2\n"), "not valid yaml")
config_file_case("not_utf8", lambda d: write_bytes(d / "c.yaml", b"\xff\xfe\x00\x81 data"), "utf-8")
config_file_case("missing_file", lambda d: d / "absent.yaml", "cannot read")
config_file_case("directory", lambda d: d, "cannot read")
set_case("set_without_value", ["train.lr"], "KEY=VALUE", names="--set 'train.lr'")
set_case("set_bad_yaml", ["train.lr=[1"], "not valid yaml", names="--set train.lr")
set_case("set_into_a_value", ["train.epochs.x=1"], "'epochs' is a value", names="--set train.epochs.x")
set_case("set_empty_key_part", ["train..lr=1"], "dotted key", names="--set 'train..lr=1'")
set_case("set_unknown_key", ["data.horizon=[1]"], "data.horizon: unknown key", "horizons", "(set by --set)")
set_case("set_negative_lr", ["train.lr=-1"], "train.lr = -1", "greater than 0", "(set by --set)")
set_case("env_bad_value", [], "health.grad_monitor.every", names="GRAD_MONITOR_EVERY", GRAD_MONITOR_EVERY="abc")
DEEP = b"[" * 100_000 + b"]" * 100_000
ALIAS_BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n".encode() for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)  # ~300 bytes expanding to 9**9 values
config_file_case("nested_100k_deep", lambda d: write_bytes(d / "c.yaml", b"data:\n  horizons: " + DEEP), "nested")
config_file_case(
    "nested_value_too_deep",
    lambda d: write_yaml(d / "c.yaml", with_key(B, "data.horizons", [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]])),
    "data.horizons",
    "nested deeper than 16",
)
config_file_case("alias_bomb", lambda d: write_bytes(d / "c.yaml", ALIAS_BOMB + b"data: {horizons: *i}\n"), "aliases")
config_file_case(
    "duplicate_section",
    lambda d: write_bytes(d / "c.yaml", b"train: {lr: 0.1}\ntrain: {epochs: 2}\n"),
    "duplicate key 'train'",
    "line 2",
)
config_file_case(
    "duplicate_key",
    lambda d: write_bytes(d / "c.yaml", b"train:\n  lr: 0.1\n  lr: 0.2\n"),
    "duplicate key 'lr'",
    "line 3",
)
config_file_case(
    "over_a_mebibyte",
    lambda d: write_bytes(d / "c.yaml", b"#" * (1 << 20) + b"\nseed: 1\n"),
    "bytes",
    "at most 1048576",
)
config_file_case("utf16", lambda d: write_bytes(d / "c.yaml", "seed: 1\n".encode("utf-16")), "not utf-8")
config_file_case(
    "latin1", lambda d: write_bytes(d / "c.yaml", "data:\n  path: caf\xe9\n".encode("latin-1")), "not utf-8", "byte 17"
)
config_file_case("tab_indent", lambda d: write_bytes(d / "c.yaml", b"train:\n\tlr: 0.1\n"), "not valid yaml")
config_case("long_string_value", with_key(B, "train.epochs", "x" * 100_000), "train.epochs", "(100002 characters)")
config_case("long_list_value", with_key(B, "model.quantiles", [0.5] * 5_000), "model.quantiles", "characters)")
config_case("too_many_values", with_key(B, "data.horizons", list(range(1, 20_000))), "more than 10000 values")
config_case("epochs_bool", with_key(B, "train.epochs", True), "train.epochs = True", "integer")
config_case("epochs_fraction", with_key(B, "train.epochs", 2.5), "train.epochs = 2.5", "integer")
config_case("horizons_empty", with_key(B, "data.horizons", []), "data.horizons = []", "at least 1")
config_case("quantile_above_one", with_key(B, "model.quantiles", [0.5, 1.5]), "model.quantiles.1 = 1.5")
config_case(
    "select_metric_unknown", with_key(B, "train.select_metric", "mse"), "train.select_metric = 'mse'", "rank_ic"
)
config_case("device_unknown", with_key(B, "train.device", "tpu"), "train.device = 'tpu'", "cuda")
config_case("precision_unknown", with_key(B, "train.precision", "fp16"), "train.precision = 'fp16'", "bf16")
config_case("lookback_zero", with_key(B, "data.lookback", 0), "data.lookback = 0", "greater than 0")
config_case("section_null", with_key(B, "train", None), "train = None")
config_case("integer_key", {**B, 1: 2}, "1 = 1", "keys should be strings")
set_case(
    "set_nested_deep", ["data.horizons=" + "[" * 5_000 + "]" * 5_000], "nested too deeply", names="--set data.horizons"
)
FLOW_BOMB = (
    "[&a [1, 1, 1, 1, 1, 1, 1, 1, 1], "
    + ", ".join(f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    + "]"
)  # one flow sequence, anchors inside: 9**9 values
set_case("set_alias_bomb", ["data.horizons=" + FLOW_BOMB], "more than 10000 values", names="--set data.horizons")
set_case("set_long_value", ["train.lr=" + "9" * 10_000 + "x"], "characters)", names="train.lr")
set_case(
    "env_nested_deep",
    [],
    "not a parsable value",
    names="GRAD_MONITOR_EVERY",
    GRAD_MONITOR_EVERY="[" * 5_000 + "]" * 5_000,
)
set_case("horizon_not_in_data", ["data.horizons=[1,5,10]"], "'target_10d' is missing", "[1, 5]", names="panel")


def splits_case(name: str, sets: list[str], *words: str) -> None:
    """Config faults only the calendar shows: `atft data splits PANEL --set ...` (the error names the panel)."""

    def make(c: Corpus) -> Invocation:
        c.dir("configs", name)
        argv = ["data", "splits", str(c.panel), "--config", str(c.config)]
        return Invocation(argv + [a for s in sets for a in ("--set", s)], words, names=c.panel)

    CASES[f"config_{name}"] = ("configs", make)


def _synth_too_small(c: Corpus) -> Invocation:
    d = c.dir("configs", "synth_too_small")
    argv = ["data", "synth", "--out", str(d / "panel.parquet"), "--set", "synth.n_days=10", "--set", "synth.n_stocks=3"]
    return Invocation(argv, ("synth.n_stocks = 3", "greater than or equal to"), names="synth.n_days = 10")


CASES["config_synth_too_small"] = ("configs", _synth_too_small)
splits_case("split_longer_than_calendar", ["split.min_train_days=1000"], "has 40 trading days, too few", "=1000")
splits_case("lookback_longer_than_history", ["data.lookback=60"], "data.lookback = 60", "allowed <= 20")


# --- prices: `atft data build --prices P --out OUT` ---------------------------------------------------


def prices_case(name: str, patch: TablePatch, *words: str, file: str = "prices.csv") -> None:
    def make(c: Corpus) -> Invocation:
        d = c.dir("prices", name)
        prices = write_table(d / file, patch(base_prices()))
        return _build(c, prices, d, words)

    CASES[f"prices_{name}"] = ("prices", make)


def prices_file_case(name: str, write: Callable[[Path], Path], *words: str) -> None:
    def make(c: Corpus) -> Invocation:
        d = c.dir("prices", name)
        return _build(c, write(d), d, words)

    CASES[f"prices_{name}"] = ("prices", make)


def _build(c: Corpus, prices: Path, d: Path, words: tuple[str, ...]) -> Invocation:
    argv = ["data", "build", "--prices", str(prices), "--out", str(d / "out" / "panel.parquet")]
    return Invocation([*argv, "--config", str(c.config)], words, names=prices)


def _scaled(column: str, rows: list[int], factor: float) -> TablePatch:
    def patch(t: pa.Table) -> pa.Table:
        x = numbers(t, column)
        x[rows] *= factor
        return replace(t, column, x)

    return patch


def _high_below_low(t: pa.Table) -> pa.Table:
    return put(t, "high", [11], float(numbers(t, "low")[11]) * 0.9)


prices_case("negative_close", lambda t: put(t, "close", [5], -3.0), "close: 1 row(s) with close <= 0")
prices_case("zero_close", lambda t: put(t, "close", [6], 0.0), "close: 1 row(s) with close <= 0")
prices_case("null_close", lambda t: put(t, "close", [6], None), "close: 1 row(s)", "null", file="p.parquet")
prices_case("high_below_low", _high_below_low, "high: 1 row(s) with high < low", "S03")
prices_case("low_above_close", _scaled("low", [20], 1.5), "low: 1 row(s) with low > min(open, close)")
prices_case("negative_volume", lambda t: put(t, "volume", [4], -1.0), "volume: 1 row(s) with volume < 0")
prices_case("inf_volume", lambda t: put(t, "volume", [4], float("inf")), "volume", "inf", file="p.parquet")
prices_case("negative_open", _scaled("open", [30], -1.0), "open: 1 row(s) with open <= 0")
prices_case("duplicate_key", lambda t: t.take(pa.array([0, *range(t.num_rows)])), "date, symbol: 1 row(s)")
prices_case("bad_date_text", lambda t: put(t, "date", [2], "2021-13-45"), "date: 1 value(s) not YYYY-MM-DD")
prices_case("null_date", lambda t: put(t, "date", [2], None), "date: 1 null(s)", file="p.parquet")
prices_case("null_symbol", lambda t: put(t, "symbol", [2], None), "symbol: 1 null(s)", file="p.parquet")
prices_case("missing_close", lambda t: t.drop_columns(["close"]), "close: required column(s) missing")
prices_case("missing_symbol", lambda t: t.drop_columns(["symbol"]), "symbol: required column(s) missing")
prices_case("close_is_text", lambda t: put(t, "close", [3], "abc"), "close: type string is not numeric")
prices_case("sector_changes", lambda t: put(t, "sector", [40], "OTHER"), "sector", "more than one label")
prices_case("reserved_column", lambda t: t.append_column("target_1d", t.column("close")), "target_1d", "reserved")
prices_case("symbol_and_code", lambda t: t.append_column("code", t.column("symbol")), "both symbol and code")
prices_case("date_is_number", lambda t: replace(t, "date", np.arange(t.num_rows)), "date: type int64 is not a date")


def _timed_prices(t: pa.Table) -> pa.Table:
    stamps = np.array(t.column("date").to_pylist(), dtype="datetime64[s]")
    stamps[3] += np.timedelta64(16 * 3600, "s")  # a close stamped 16:00
    return replace(t, "date", pa.array(stamps, pa.timestamp("s")))


prices_case("date_with_time_of_day", _timed_prices, "date:", "time of day", "at row 3", file="p.parquet")
prices_case("date_text_with_time", lambda t: put(t, "date", [4], "2021-01-08 16:00:00"), "date:", "time of day")
prices_case("volume_is_text", lambda t: put(t, "volume", [2], "many"), "volume", "not numeric")
prices_case("open_is_text", lambda t: put(t, "open", [2], "abc"), "open", "not numeric")
prices_file_case("gzip_that_is_not", lambda d: write_bytes(d / "p.csv.gz", b"date,symbol,close\n"), "cannot read")
prices_file_case("binary_csv", lambda d: write_bytes(d / "p.csv", bytes(range(256)) * 16), "cannot read")
prices_file_case("empty_csv", lambda d: write_bytes(d / "p.csv", b""), "cannot read", "empty")
prices_file_case("header_only", lambda d: write_bytes(d / "p.csv", b"date,symbol,close\n"), "no rows", "close")
prices_file_case("ragged_csv", lambda d: write_bytes(d / "p.csv", b"date,symbol,close\n2021-01-04,A\n"), "cannot read")
prices_file_case("truncated_gzip", lambda d: truncate(write_table(d / "p.csv.gz", base_prices())), "cannot read")
prices_file_case("unsupported_format", lambda d: write_bytes(d / "p.txt", b"x"), "unsupported format", ".csv")
prices_file_case("missing_file", lambda d: d / "absent.csv", "no such file")


def _output_under_a_file(c: Corpus) -> Invocation:
    d = c.dir("prices", "output_under_a_file")
    blocker = write_bytes(d / "out", b"a file where a directory must be")
    argv = ["data", "build", "--prices", str(c.root / "base" / "prices.csv"), "--out", str(blocker / "panel.parquet")]
    return Invocation(argv, ("cannot be created", "is a file, not a directory"), names=blocker)


def _output_is_a_directory(c: Corpus) -> Invocation:
    d = c.dir("prices", "output_is_a_directory")
    argv = ["data", "build", "--prices", str(c.root / "base" / "prices.csv"), "--out", str(make_dir(d / "out"))]
    return Invocation([*argv, "--overwrite"], ("is a directory",), names=d / "out")


CASES["prices_output_under_a_file"] = ("prices", _output_under_a_file)
CASES["prices_output_is_a_directory"] = ("prices", _output_is_a_directory)


# --- run directories: `atft report RUN_DIR` ---------------------------------------------------------


def run_case(name: str, spoil: Callable[[Path], Path], *words: str) -> None:
    """Copy the base run, spoil one file (``spoil`` returns the file the error must name)."""

    def make(c: Corpus) -> Invocation:
        run = c.dir("runs", name) / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(c.root / "base" / "run", run)
        return Invocation(["report", str(run)], words, names=spoil(run))

    CASES[f"run_{name}"] = ("runs", make)


def _append(name: str, data: bytes) -> Callable[[Path], Path]:
    def spoil(run: Path) -> Path:
        with open(run / name, "ab") as fh:
            fh.write(data)
        return run / name

    return spoil


def remove(path: Path) -> Path:
    """Delete ``path`` (a file or a whole directory) and return it: the input the error must name."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return path


def _drop_column(run: Path) -> Path:
    import pyarrow.parquet as pq

    path = run / "predictions.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["model_5d"]), path)
    return path


run_case("missing", lambda r: remove(r), "no such run directory")
run_case("no_config", lambda r: remove(r / "config.yaml"), "no such file")
run_case("events_not_json", _append("events.jsonl", b'{"kind": "metric", \n'), "telemetry event is not json")
run_case("events_without_version", _append("events.jsonl", b'{"step": 3}\n'), "no schema version", "missing field v")
run_case("events_not_utf8", _append("events.jsonl", b"\xff\xfe\n"), "not utf-8 text")
run_case("config_invalid", lambda r: write_bytes(r / "config.yaml", b"seed: many\n"), "seed = 'many'")
run_case("events_nested_deep", _append("events.jsonl", DEEP + b"\n"), "nested too deeply")
run_case("config_nested_deep", lambda r: write_bytes(r / "config.yaml", b"seed: " + DEEP), "nested too deeply")
run_case("config_alias_bomb", lambda r: write_bytes(r / "config.yaml", ALIAS_BOMB), "more than 10000 values")
run_case("config_duplicate_key", _append("config.yaml", b"seed: 3\n"), "duplicate key 'seed'")
run_case("predictions_truncated", lambda r: truncate(r / "predictions.parquet"), "cannot read as parquet")
run_case("predictions_missing_column", _drop_column, "missing column(s) model_5d")


# --- train: config-vs-data mismatches that only `atft train` meets -----------------------------------


def train_case(name: str, sets: list[str], *words: str, panel: TablePatch | None = None) -> None:
    def make(c: Corpus) -> Invocation:
        d = c.dir("train", name)
        data = c.panel if panel is None else write_table(d / "panel.parquet", panel(base_panel()))
        argv = ["train", "--config", str(c.config), "--data", str(data), "--out", str(d / "run"), "--no-progress"]
        return Invocation(argv + [a for s in sets for a in ("--set", s)], words, names=data)

    CASES[f"train_{name}"] = ("train", make)


train_case("horizon_not_in_data", ["data.horizons=[1,5,10]"], "'target_10d' is missing")
train_case("lookback_longer_than_history", ["data.lookback=60"], "data.lookback = 60", "40")
train_case("split_longer_than_calendar", ["split.min_train_days=1000"], "40 trading days, too few")


def _train_out(name: str, out: Callable[[Path], Path], *words: str) -> None:
    """``--out`` that cannot be a run directory: a file, or a path under a file (the error names ``--out``)."""

    def make(c: Corpus) -> Invocation:
        target = out(c.dir("train", name))
        argv = ["train", "--config", str(c.config), "--data", str(c.panel), "--out", str(target), "--no-progress"]
        return Invocation(argv, words, names=target)

    CASES[f"train_{name}"] = ("train", make)


_train_out("out_is_a_file", lambda d: write_bytes(d / "run", b"x"), "not a directory")
_train_out("out_under_a_file", lambda d: write_bytes(d / "blocker", b"x") / "run", "not a directory")
train_case("dead_feature", [], "'feat_f2' is dead", panel=lambda t: replace(t, "feat_f2", per_date(t, 1)))


# --- checkpoints ---------------------------------------------------------------------------------------
def _checkpoint(name: str, damage: Callable[[Path], object], hidden_size: int | None, *words: str) -> None:
    """``atft train --resume CKPT`` with a checkpoint of the base config's model (or another ``hidden_size``)."""

    def make(c: Corpus) -> Invocation:
        cfg = load_config(c.config, [f"model.hidden_size={hidden_size}"] if hidden_size else [])
        panel = load_panel(c.panel, cfg.data.horizons)
        weights = build_model(cfg, panel, torch.ones(len(panel.horizons))).state_dict()
        d = c.dir("checkpoints", name)
        ckpt = save_checkpoint(d / "checkpoints", 1, dict(weights), None, None, {"config": dump_config(cfg)}, keep=1)
        damage(ckpt)
        argv = ["train", "--config", str(c.config), "--data", str(c.panel), "--out", str(d / "run"), "--no-progress"]
        return Invocation([*argv, "--resume", str(ckpt)], words, names=ckpt)

    CASES[f"checkpoint_{name}"] = ("checkpoints", make)


_checkpoint("truncated", lambda p: os.truncate(p / "model.safetensors", 64), None, "checksum mismatch")
_checkpoint("other_model_shape", lambda p: None, 24, "another model shape", "in the checkpoint")
_checkpoint("no_manifest", lambda p: (p / "manifest.json").unlink(), None, "unreadable checkpoint manifest")
