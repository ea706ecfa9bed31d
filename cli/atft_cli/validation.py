"""A walk-forward validation on a cluster: one job per fold and seed, all labelled with one validation id.

Why one job per fold: ``atft validate`` trains every fold from scratch, and the folds are independent, so on a
cluster they run in parallel, each admitted by Kueue on its own (the chart puts ``kueue.x-k8s.io/queue-name`` on
every job) and each retried or preempted on its own. A fold job is the same training a local validation runs
(``--set split.fold=K --set seed=S``) and writes its run directory where a local one would,
``/runs/<id>/runs/fold-KK-seed-S`` on the runs volume, so ``atft validate --report-only --out /runs/<id>``
(in a pod that mounts the volume: the chart's report Job, or the nightly CronJob) pools them into the same
report. The chart values ``validation.id/fold/seed`` make a job a fold job; this module only plans the names
and values and follows the jobs by the label ``atft.dev/validation-id``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from atft.errors import AtftError
from atft_cli.render import MAX_NAME, InvalidNameError

VALIDATION_LABEL = "atft.dev/validation-id"
FOLD_LABEL = "atft.dev/fold"
SEED_LABEL = "atft.dev/seed"
TERMINAL = ("Succeeded", "Failed")
POLL_S = 15.0  # between two lists of the validation's jobs while waiting: one request for all of them


class ValidationInputError(AtftError):
    """The fan-out cannot be planned from what was given (no fold count, a name too long)."""

    exit_code = 2


class FoldsFailed(AtftError):
    """Every fold job ended and at least one failed."""

    exit_code = 1


class FoldsTimeout(AtftError):
    """Some fold jobs were still running when ``--timeout`` passed."""

    exit_code = 3


class Jobs(Protocol):
    """What following a validation needs from a backend (both targets have it)."""

    namespace: str

    def list_jobs(self, selector: str | None = None) -> list[dict[str, Any]]: ...

    def state(self, job: dict[str, Any]) -> str: ...

    def command(self, verb: str, name: str = "", extra: str = "") -> str: ...


@dataclass(frozen=True)
class FoldJob:
    """The job that trains fold ``fold`` with model seed ``seed`` for validation ``validation``."""

    validation: str
    fold: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.validation}-f{self.fold:02d}-s{self.seed}"

    @property
    def chart_sets(self) -> list[str]:
        """The chart values that make a release this fold's job (contract: helm/atft/values.yaml ``validation``)."""
        return [f"validation.id={self.validation}", f"validation.fold={self.fold}", f"validation.seed={self.seed}"]


def fold_jobs(validation: str, n_folds: int, seeds: Sequence[int]) -> list[FoldJob]:
    """Every fold (0 = the oldest of the ``n_folds`` newest, as ``split.fold``) for every seed, oldest first.

    Raises:
        InvalidNameError: a job name would exceed the job-name limit; the message gives the longest id allowed.
    """
    jobs = [FoldJob(validation, fold, seed) for fold in range(n_folds) for seed in seeds]
    longest = max(jobs, key=lambda j: len(j.name))
    if len(longest.name) > MAX_NAME:
        allowed = MAX_NAME - (len(longest.name) - len(validation))
        raise InvalidNameError(
            f"--name {validation!r}: fold jobs are named <name>-fKK-sS ({longest.name!r} has {len(longest.name)} "
            f"characters, at most {MAX_NAME}); use a validation name of at most {allowed} characters"
        )
    return jobs


def fold_count(n_folds: int | None, config_folds: int | None, config_source: str) -> int:
    """``--folds`` if given, else the config's ``split.n_folds``.

    Why not count them here: the folds depend on the panel's calendar, and the panel is on the cluster's data
    volume, not where ``atft submit`` runs. ``split.n_folds`` keeps the newest n folds, so with it the count is
    known without the panel, and fold k is the same fold wherever it is counted.

    Raises:
        ValidationInputError: neither is set.
    """
    if n_folds is not None:
        return n_folds
    if config_folds is not None:
        return config_folds
    raise ValidationInputError(
        f"{config_source}: split.n_folds is null, so the number of folds depends on the panel on the cluster; "
        "set split.n_folds in the config or pass --folds N"
    )


def report_sets(validation: str, seeds: Sequence[int]) -> list[str]:
    """Chart values of the report Job of ``validation`` (helm --set: a comma inside a value is escaped)."""
    return [f"validation.id={validation}", "validation.report=true", "validation.seeds=" + "\\,".join(map(str, seeds))]


def fold_rows(api: Jobs, validation: str) -> list[dict[str, Any]]:
    """One row per fold job of ``validation``: name, fold, seed, state; ordered by fold, then seed."""
    jobs = api.list_jobs(selector=f"{VALIDATION_LABEL}={validation}")
    rows = []
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        fold, seed = labels.get(FOLD_LABEL), labels.get(SEED_LABEL)
        rows.append(
            {
                "name": job["metadata"]["name"],
                "fold": int(fold) if fold is not None else -1,
                "seed": int(seed) if seed is not None else -1,
                "state": api.state(job),
            }
        )
    return sorted(rows, key=lambda r: (r["fold"], r["seed"], r["name"]))


def counts(rows: Sequence[dict[str, Any]]) -> str:
    """``'3 Succeeded, 1 Running'``: how many fold jobs are in each state, most first."""
    tally: dict[str, int] = {}
    for row in rows:
        tally[row["state"]] = tally.get(row["state"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))


def wait_all(
    api: Jobs,
    validation: str,
    timeout_s: float,
    on_change: Callable[[list[dict[str, Any]]], None],
    poll_s: float = POLL_S,
) -> list[dict[str, Any]]:
    """Poll the validation's jobs until every one has ended; ``on_change`` sees the rows when a state changes.

    One list request per poll covers every fold, however many there are (a watch per job would hold one
    connection per fold for hours). Returns the final rows when all succeeded.

    Raises:
        JobNotFound: no job carries the validation's label.
        FoldsFailed: all ended and some failed (each named, with the command that shows why).
        FoldsTimeout: some had not ended after ``timeout_s``.
    """
    from atft_cli.k8s import JobNotFound

    deadline = time.monotonic() + timeout_s
    seen: list[tuple[str, str]] = []
    while True:
        rows = fold_rows(api, validation)
        if not rows:
            raise JobNotFound(
                f"no jobs labelled {VALIDATION_LABEL}={validation} in namespace {api.namespace}; "
                f"`{api.command('list')}` shows the jobs there"
            )
        states = [(r["name"], r["state"]) for r in rows]
        if states != seen:
            seen = states
            on_change(rows)
        if all(r["state"] in TERMINAL for r in rows):
            break
        if time.monotonic() >= deadline:
            raise FoldsTimeout(
                f"validation {validation}: {counts(rows)} after {timeout_s:g}s; "
                f"`{api.command('status', extra=f'--validation {validation}')}` shows each fold"
            )
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    failed = [r["name"] for r in rows if r["state"] == "Failed"]
    if failed:
        raise FoldsFailed(
            f"validation {validation}: {len(failed)} of {len(rows)} fold jobs failed: {', '.join(failed)}; "
            f"`{api.command('logs', failed[0])}` shows why"
        )
    return rows
