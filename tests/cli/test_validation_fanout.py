"""Planning a cluster validation (one job per fold and seed) and following its jobs by their label."""

from __future__ import annotations

from typing import Any

import pytest

from atft_cli.k8s import JobNotFound
from atft_cli.render import MAX_NAME, InvalidNameError
from atft_cli.validation import (
    FoldsFailed,
    FoldsTimeout,
    ValidationInputError,
    fold_count,
    fold_jobs,
    report_sets,
    wait_all,
)


class _Jobs:
    """A backend whose jobs change state on each list, as a cluster's would between polls."""

    namespace = "research"

    def __init__(self, timeline: list[dict[str, str]]) -> None:
        self.timeline = timeline
        self.selectors: list[str | None] = []

    def list_jobs(self, selector: str | None = None) -> list[dict[str, Any]]:
        self.selectors.append(selector)
        states = self.timeline[min(len(self.selectors), len(self.timeline)) - 1]
        return [
            {"metadata": {"name": name, "labels": {"atft.dev/fold": name[-4], "atft.dev/seed": name[-1]}}, "s": s}
            for name, s in states.items()
        ]

    def state(self, job: dict[str, Any]) -> str:
        return str(job["s"])

    def command(self, verb: str, name: str = "", extra: str = "") -> str:
        return " ".join(p for p in (f"atft {verb}", name, extra, "--target trainjob -n research") if p)


def test_every_fold_runs_for_every_seed_under_one_name_with_its_chart_values() -> None:
    jobs = fold_jobs("wf-nightly", 3, [0, 1])
    assert [j.name for j in jobs] == [
        "wf-nightly-f00-s0", "wf-nightly-f00-s1", "wf-nightly-f01-s0",
        "wf-nightly-f01-s1", "wf-nightly-f02-s0", "wf-nightly-f02-s1",
    ]  # fmt: skip
    assert jobs[3].chart_sets == ["validation.id=wf-nightly", "validation.fold=1", "validation.seed=1"]


def test_a_validation_name_too_long_for_its_job_names_says_the_longest_allowed() -> None:
    longest = "v" * (MAX_NAME - len("-f00-s10"))
    assert fold_jobs(longest, 1, [10])[0].name == f"{longest}-f00-s10"
    with pytest.raises(InvalidNameError, match=f"at most {len(longest)} characters"):
        fold_jobs(longest + "v", 1, [10])


def test_the_fold_count_comes_from_the_option_or_the_config_and_never_from_a_guess() -> None:
    assert fold_count(4, 7, "c.yaml") == 4
    assert fold_count(None, 7, "c.yaml") == 7
    with pytest.raises(ValidationInputError, match=r"c\.yaml: split\.n_folds is null.*pass --folds N"):
        fold_count(None, None, "c.yaml")


def test_the_report_job_gets_the_seeds_with_commas_escaped_for_helm() -> None:
    assert report_sets("wf", [0, 1, 2]) == ["validation.id=wf", "validation.report=true", "validation.seeds=0\\,1\\,2"]


def test_wait_returns_when_every_fold_ended_and_reports_each_change_once() -> None:
    api = _Jobs(
        [
            {"wf-f00-s0": "Created", "wf-f01-s0": "Created"},
            {"wf-f00-s0": "Running", "wf-f01-s0": "Created"},
            {"wf-f00-s0": "Running", "wf-f01-s0": "Created"},
            {"wf-f00-s0": "Succeeded", "wf-f01-s0": "Running"},
            {"wf-f00-s0": "Succeeded", "wf-f01-s0": "Succeeded"},
        ]
    )
    changes: list[list[str]] = []
    rows = wait_all(api, "wf", 60, lambda rs: changes.append([r["state"] for r in rs]), poll_s=0)
    assert [r["state"] for r in rows] == ["Succeeded", "Succeeded"] and [r["fold"] for r in rows] == [0, 1]
    assert changes == [["Created", "Created"], ["Running", "Created"], ["Succeeded", "Running"], ["Succeeded"] * 2]
    assert set(api.selectors) == {"atft.dev/validation-id=wf"}


def test_wait_waits_for_the_others_after_a_failure_then_names_every_failed_fold() -> None:
    api = _Jobs(
        [
            {"wf-f00-s0": "Failed", "wf-f01-s0": "Running"},
            {"wf-f00-s0": "Failed", "wf-f01-s0": "Succeeded"},
        ]
    )
    with pytest.raises(
        FoldsFailed, match="1 of 2 fold jobs failed: wf-f00-s0; `atft logs wf-f00-s0 --target"
    ) as failed:
        wait_all(api, "wf", 60, lambda rs: None, poll_s=0)
    assert failed.value.exit_code == 1 and len(api.selectors) == 2


def test_wait_times_out_with_the_count_in_each_state_and_a_missing_validation_is_named() -> None:
    api = _Jobs([{"wf-f00-s0": "Running", "wf-f01-s0": "Succeeded", "wf-f02-s0": "Running"}])
    with pytest.raises(FoldsTimeout, match="validation wf: 2 Running, 1 Succeeded after 0s") as late:
        wait_all(api, "wf", 0, lambda rs: None, poll_s=0)
    assert late.value.exit_code == 3
    with pytest.raises(JobNotFound, match=r"no jobs labelled atft\.dev/validation-id=gone in namespace research"):
        wait_all(_Jobs([{}]), "gone", 60, lambda rs: None, poll_s=0)
