"""What a run prints on stderr: plain whole lines in a log, rich styling on a terminal, progress lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from atft.config import load_config
from atft.data.panel import load_panel
from atft.data.splits import pick, walk_forward
from atft.health.events import HealthEvent
from atft.runs.directory import RunDir
from atft.telemetry.sinks import ConsoleSink, HealthConsoleSink, is_terminal, one_line
from atft.train import runtime
from atft.train.distributed import World
from atft.train.job import start_banner
from atft.train.progress import ProgressLines, TrainPlan, duration, train_plan
from atft.train.setup import prepare

ROOT = Path(__file__).resolve().parents[2]
LONG_VAL = {"epoch": 0, "loss": 0.6679} | {f"rank_ic_{h}d": 0.031192 + h for h in (1, 5, 10, 20, 40, 60)}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_sink_writes_one_plain_line_per_record_without_a_terminal(capsys: pytest.CaptureFixture) -> None:
    sink = ConsoleSink(("val", "resume"))  # capsys's stderr is no terminal: plain is chosen, not forced
    sink.log_dict("train", 1, {"loss": 1.0})
    sink.log_dict("val", 828, LONG_VAL)
    sink.log_dict("resume", 828, {"skipped_checkpoint": "runs/[a]/step-9: sha256\nmismatch"})
    lines = capsys.readouterr().err.split("\n")
    assert lines[-1] == "" and len(lines) == 3  # two records, two lines, no wrap at 80 columns
    assert len(lines[0]) > 120 and lines[0].startswith("val step=828 epoch=0 loss=0.6679 rank_ic_1d=1.031")
    assert lines[0].endswith("rank_ic_60d=60.03")
    assert lines[1] == "resume step=828 skipped_checkpoint=runs/[a]/step-9: sha256 mismatch"  # brackets kept
    assert "\x1b[" not in "".join(lines)


def test_console_sink_styles_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert is_terminal(terminal)
    ConsoleSink(("val",)).log_dict("val", 828, LONG_VAL)
    out = terminal.getvalue()
    assert "\x1b[1mval\x1b[0m step=828" in out  # the kind in bold: the rich path, not the plain one
    assert out.count("\n") == 1  # soft wrap: the terminal folds the line, rich does not break it


def test_health_event_is_one_line_whatever_its_message(capsys: pytest.CaptureFixture) -> None:
    sink = HealthConsoleSink(plain=True)
    sink.log_dict("val", 3, {"epoch": 2, "loss": 1.0})
    message = "under 1e-8\n  second line\r\tthird"
    sink.health(HealthEvent("vanishing_gradient", 120, 3e-9, "critical", component="temporal_encoder", message=message))
    err = capsys.readouterr().err
    assert err == (
        "CRITICAL vanishing_gradient component=temporal_encoder step=120 epoch=2 value=3e-09: "
        "under 1e-8   second line  third\n"
    )


def test_one_line_turns_every_control_character_into_a_space() -> None:
    assert one_line("a\nb\r\nc\x1b[31md\u2028e") == "a b  c [31md e"


def test_progress_lines_report_rate_and_time_left_from_the_clock() -> None:
    now = [0.0]
    lines: list[str] = []
    sink = ProgressLines(TrainPlan(2, 50, 10.0), clock=lambda: now[0], write=lines.append)
    now[0] = 10.0
    sink.log_dict("preflight", 0, {"loss": 1.0})  # training starts here; setup time does not count
    now[0] = 20.0
    sink.log_dict("train", 25, {"epoch": 0, "loss": 1.0})
    sink.log_dict("val", 25, {"epoch": 0})  # other kinds print nothing
    now[0] = 25.0
    sink.log_dict("train", 50, {"epoch": 0, "loss": 1.0})
    assert lines == [
        "progress step=25/100 (25%) epoch=0/2 rate=25 stock-days/s elapsed=10s left=30s",
        "progress step=50/100 (50%) epoch=0/2 rate=50 stock-days/s elapsed=15s left=15s",
    ]


def test_progress_lines_of_a_resumed_run_count_only_its_own_steps() -> None:
    now = [100.0]
    lines: list[str] = []
    sink = ProgressLines(TrainPlan(4, 100, 2.0), start_step=300, clock=lambda: now[0], write=lines.append)
    now[0] = 110.0
    sink.log_dict("train", 320, {"epoch": 3, "loss": 1.0})
    assert lines == ["progress step=320/400 (80%) epoch=3/4 rate=4 stock-days/s elapsed=10s left=40s"]


def test_duration_reads_as_the_two_largest_units() -> None:
    assert [duration(s) for s in (0.4, 59.6, 61, 3599, 3600 * 2 + 5 * 60 + 59)] == [
        "0s",
        "1m00s",
        "1m01s",
        "59m59s",
        "2h05m",
    ]


@pytest.mark.parametrize("sets", [[], ["train.accumulate_days=3", "data.max_stocks_per_batch=20"]])
def test_train_plan_counts_what_the_loop_iterates(debug_panel: Path, sets: list[str]) -> None:
    cfg = load_config(ROOT / "configs" / "debug.yaml", ["train.epochs=3", *sets])
    panel = load_panel(debug_panel, cfg.data.horizons)
    data = prepare(cfg, panel, pick(walk_forward(panel.dates, cfg), cfg.split.fold))
    plan = train_plan(cfg, data)
    sampler, acc = data.samplers["train"], cfg.train.accumulate_days
    items = list(sampler)
    stock_days = sum(len(data.dataset.stocks_of(item)) for item in items)  # what the loader serves
    assert plan.total_steps == 3 * (len(items) // acc)
    assert plan.stock_days_per_step == pytest.approx(stock_days / len(items) * acc)


def test_banner_names_the_run_and_warns_once_for_emulated_bf16(
    debug_panel: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    avx2_only = runtime.CpuInfo("Fake AVX2 CPU", "x86_64", frozenset({"avx", "avx2", "fma"}))
    monkeypatch.setattr(runtime, "cpu_info", lambda: avx2_only)
    for precision, warned in (("bf16", 1), ("auto", 0)):
        cfg = load_config(ROOT / "configs" / "debug.yaml", [f"train.precision={precision}", "train.device=cpu"])
        panel = load_panel(debug_panel, cfg.data.horizons)
        start_banner(cfg, panel, RunDir(tmp_path / precision, cfg), None, World())
        lines = capsys.readouterr().err.splitlines()
        assert lines[0].startswith(f"start run_dir={tmp_path / precision} data={debug_panel} ")
        assert "panel=48 stocks x 260 days x " in lines[0] and " resume=fresh" in lines[0]
        shown = "bf16" if precision == "bf16" else "fp32"
        assert f" device=cpu precision={shown} (train.precision={precision}) " in lines[0]
        warnings = [line for line in lines if line.startswith("WARNING emulated_bf16 ")]
        assert len(warnings) == warned and len(lines) == 1 + warned
        if warned:
            assert "'Fake AVX2 CPU' without avx512_bf16 or amx_bf16" in warnings[0]
