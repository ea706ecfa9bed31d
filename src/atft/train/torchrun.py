"""``python -m atft.train.torchrun ARGS``: torchrun (``torch.distributed.run``) whose exit code says preemption.

Why: on SIGTERM (a preemption, a node drain) torchrun forwards the signal to its workers, which finish their
step, write a checkpoint and exit 143 -- and then torchrun itself dies of a ``SignalException`` with exit code 1
and a traceback. The PyTorchJob's ``restartPolicy: ExitCode`` and the chart's TrainingRuntime read 1-127 as a
permanent failure, so a preempted multi-process run would never be re-created to resume from that checkpoint.
This runs torchrun's own ``main`` with the same arguments and exits as a single process does on a signal:
``128 + signal`` (143 for SIGTERM, :class:`atft.errors.Preempted`), with one line instead of a traceback. A run
whose every failed worker was itself preempted (exit 143) exits 143 too; any other failure keeps torchrun's
exit code 1 and its report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from atft.errors import Preempted

SIGNAL_BASE = 128


def exit_code(exc: BaseException) -> int | None:
    """128 + the signal torchrun stopped on, 143 when every failed worker was preempted; None for anything else."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if isinstance(exc, SignalException):
        return SIGNAL_BASE + int(exc.sigval)
    failures = exc.failures.values() if isinstance(exc, ChildFailedError) else ()
    if failures and all(f.exitcode == Preempted.exit_code for f in failures):
        return Preempted.exit_code
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from torch.distributed.run import main as torchrun

    try:
        torchrun(list(argv) if argv is not None else None)
    except Exception as exc:  # a signal or failed workers: mapped below, anything else re-raised as torchrun would
        code = exit_code(exc)
        if code is None:
            raise
        print(
            f"error: torchrun stopped ({type(exc).__name__}: {exc}); the workers checkpointed on the signal: "
            "the same command with --resume auto continues",
            file=sys.stderr,
        )
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
