"""The exceptions atft raises for conditions a user can fix, each with the exit code the CLI uses.

Exit codes are a documented contract (README, "Exit codes"): 0 ok, 1 the job ran and failed,
2 bad input (config, data, arguments, a corrupt checkpoint), 3 timed out, 143 preempted (SIGTERM: a
checkpoint was written; the same command with ``--resume auto`` continues). Anything that is not an :class:`AtftError`
is a bug and surfaces with its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class AtftError(Exception):
    """Base class: a failure with a message meant for the user and an exit code."""

    exit_code: int = 1


class ConfigError(AtftError):
    """The configuration is invalid. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: Iterable[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"invalid {source}: {_listed(self.problems)}")


class DataContractError(AtftError):
    """A panel or price file violates the data contract (file, column, first offending key)."""

    exit_code = 2

    def __init__(self, problems: Iterable[str], source: str) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: data contract violated: {_listed(self.problems)}")


class InputFileError(AtftError):
    """An input file is missing, unreadable or of an unsupported format."""

    exit_code = 2


class OutputExistsError(AtftError):
    """An output path exists and the user did not ask to overwrite it."""

    exit_code = 2


class TrainingFailed(AtftError):
    """The run started but could not go on (a non-finite loss, a pre-flight that found no gradient, ...)."""

    exit_code = 1


class CheckpointError(AtftError):
    """A checkpoint is corrupt, truncated, from another model shape, or does not match the run."""

    exit_code = 2


class Preempted(AtftError):
    """SIGTERM arrived; the current step finished and a checkpoint was written. Retryable: 128 + SIGTERM."""

    exit_code = 143


def _listed(problems: list[str]) -> str:
    """One problem on the message's own line; several as a counted list, one per line."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
