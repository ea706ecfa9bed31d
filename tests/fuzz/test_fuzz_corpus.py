"""Every malformed input of the corpus gets its exit code, a named error and leaves nothing behind.

The CLI runs in-process (``atft_cli.main.main`` with a patched ``sys.argv``) so 100+ cases cost seconds; a
few run as real processes to prove the same boundary holds where a user meets it. A case passes when:

* the exit code is the documented one (2: bad input);
* stderr holds exactly one ``error:`` line; it (with its indented problem lines, not the hint) names the
  offending input (the file, or the option or variable given) and, beside that name, holds the case's
  words (the column, key or fault): a word that only the path spells does not count;
* nothing escaped as a traceback (in-process: no exception other than ``SystemExit`` left ``main``);
* nothing changed anywhere: the case's directory, the synthetic-data cache (``ATFT_CACHE_DIR``) and the
  temporary directory (``TMPDIR``) hold exactly the files, with exactly the bytes, they held before: no
  output, no temporary file, no run directory, no file cut or rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzz_cases import CASES
from fuzz_cases_runs import REAL_PROCESS_FAMILIES, trained, trained_config
from fuzz_corpus import FAMILIES, Corpus, Invocation, write_base

from atft_cli.main import main


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return write_base(tmp_path_factory.mktemp("fuzz"))


def invoke(argv: list[str], env: dict[str, str]) -> Outcome:
    """Run ``atft ARGV`` in this process; any exception but SystemExit propagates (and fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_env = sys.argv, dict(os.environ)
    sys.argv = ["atft", *argv]
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = old_argv
        os.environ.clear()
        os.environ.update(old_env)
    code = exit_.value.code
    return Outcome(code if isinstance(code, int) else 1, _plain(out.getvalue()), _plain(err.getvalue()))


def _plain(text: str) -> str:
    """Without terminal colour codes (rich adds them when the test runs at a terminal with -s)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def spawn(argv: list[str], env: dict[str, str], module: str = "atft_cli") -> Outcome:
    """Run ``python -m MODULE ARGV`` as a real process, as a user (``atft_cli``) or the container does."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=full, timeout=120)
    return Outcome(done.returncode, done.stdout, done.stderr)


THIRD_PARTY_TEMP = "torch_geometric."
"""PyG renders its message-passing code from templates into the temporary directory the first time a process
builds a graph layer, and never removes those files (``torch_geometric/template.py``). They are not atft's
output; a real process that builds the model to restore a checkpoint leaves them, so they are not counted."""


def listing(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` -> its SHA-256 (files) or "dir": what must not change."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for root in roots
        for p in sorted(root.rglob("*"))
        if not p.name.startswith(THIRD_PARTY_TEMP)
    }


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A fresh data cache and temporary directory for one case (empty; each must stay empty)."""
    cache, temp = tmp_path / "cache", tmp_path / "tmp"
    cache.mkdir()
    temp.mkdir()
    monkeypatch.setenv("ATFT_CACHE_DIR", str(cache))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield cache, temp


def assert_refused(case: str, call: Invocation, outcome: Outcome) -> None:
    err = outcome.stderr
    assert outcome.code == call.code, f"{case}: exit {outcome.code}, stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, f"{case}: expected one error line:\n{err}"
    block = [lines[errors[0]]]  # the error line and its indented problem lines; hints do not count
    block += list(itertools.takewhile(lambda line: line.startswith("  "), lines[errors[0] + 1 :]))
    message = "\n".join(block)
    assert call.names is not None and call.expect, f"{case}: a case names its input and the fault's words"
    assert str(call.names) in message, f"{case}: the error does not name {call.names}:\n{err}"
    beside = message.replace(str(call.names), " ")  # the words must be said, not spelled by the path
    for word in call.expect:
        assert word.lower() in beside.lower(), f"{case}: {word!r} not in the error beside {call.names}:\n{err}"


def test_the_corpus_covers_every_family_and_at_least_160_faults() -> None:
    families = {family for family, _ in CASES.values()}
    assert len(CASES) >= 160
    assert families == set(FAMILIES)


def test_the_base_inputs_are_valid(corpus: Corpus) -> None:
    """The control: without the planted fault each command succeeds, so each case fails for its fault alone."""
    base = corpus.root / "base"
    commands = [
        ["data", "check", str(corpus.panel), "--config", str(corpus.config)],
        ["data", "splits", str(corpus.panel), "--config", str(corpus.config)],
        ["data", "build", "--prices", str(base / "prices.csv"), "--out", str(base / "built.parquet")],
        ["report", str(base / "run")],
    ]
    for argv in commands:
        outcome = invoke([*argv], {})
        assert outcome.code == 0, f"{argv}: {outcome.stderr}"
    assert (base / "built.parquet").is_file() and (base / "run" / "report.json").is_file()


def test_the_trained_run_resumes_when_nothing_is_spoiled(corpus: Corpus, tmp_path: Path) -> None:
    """The control of the resume and checkpoint families: a copy of the trained run, unspoiled, resumes."""
    run = tmp_path / "run"
    shutil.copytree(trained(corpus), run)
    argv = ["train", "--config", str(trained_config(corpus)), "--data", str(corpus.panel), "--out", str(run)]
    outcome = invoke([*argv, "--no-progress", "--resume", "auto"], {})
    assert outcome.code == 0, outcome.stderr
    assert (run / "report.json").is_file()


def _changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


IN_PROCESS = sorted(c for c, (family, _) in CASES.items() if family not in REAL_PROCESS_FAMILIES)
REAL_PROCESS = ["panel_truncated_parquet", "config_unknown_key", "prices_negative_close", "run_events_not_json"]
REAL_PROCESS += sorted(c for c, (family, _) in CASES.items() if family in REAL_PROCESS_FAMILIES)


@pytest.mark.parametrize("case", IN_PROCESS)
def test_malformed_input_is_refused_cleanly(case: str, corpus: Corpus, sandbox: tuple[Path, Path]) -> None:
    family, make = CASES[case]
    call = make(corpus)
    watched = (corpus.root / family / case.split("_", 1)[1], *sandbox)
    before = listing(*watched)
    outcome = invoke(call.argv, call.env)
    assert_refused(case, call, outcome)
    assert listing(*watched) == before, f"{case}: changed {_changes(before, listing(*watched))}"


@pytest.mark.parametrize("case", REAL_PROCESS)
def test_a_real_process_gives_the_same_answer(case: str, corpus: Corpus, sandbox: tuple[Path, Path]) -> None:
    """A few in-process cases again as real processes, and the families only a real process can show: the
    container's own entry point (``python -m atft.train``)."""
    family, make = CASES[case]
    call = make(corpus)
    watched = (corpus.root / family / case.split("_", 1)[1], *sandbox)
    before = listing(*watched)
    env = {"ATFT_CACHE_DIR": str(sandbox[0]), "TMPDIR": str(sandbox[1]), **call.env}
    assert_refused(case, call, spawn(call.argv, env, module=call.module))
    assert listing(*watched) == before, f"{case}: changed {_changes(before, listing(*watched))}"


def test_a_run_killed_mid_write_still_gets_its_report(corpus: Corpus) -> None:
    """events.jsonl is appended line by line, so a kill can cut its last line: that line is left out, and said."""
    run = corpus.root / "runs" / "torn_tail" / "run"
    shutil.copytree(corpus.root / "base" / "run", run)
    (run / "report.json").unlink(missing_ok=True)
    events = run / "events.jsonl"
    n_lines = len(events.read_text().splitlines())
    with open(events, "a") as fh:
        fh.write('{"kind": "metric", "step": 31, "lo')
    outcome = invoke(["report", str(run), "-o", "json"], {})
    assert outcome.code == 0, outcome.stderr
    assert f"line {n_lines + 1} was cut off" in outcome.stderr
    report = json.loads((run / "report.json").read_text())
    assert report["events_torn_line"] == n_lines + 1
    assert "was cut off" in (run / "report.md").read_text()
    with open(events, "a") as fh:  # once a line follows it, the broken line is damage, not a torn tail
        fh.write('\n{"kind": "metric", "step": 32}\n')
    call = Invocation(["report", str(run)], (f":{n_lines + 1}: telemetry event is not json",), names=events)
    assert_refused("torn_then_more", call, invoke(call.argv, {}))
