"""atft.train.torchrun: how a stopped torchrun's exception becomes the exit code the restart rules read."""

from __future__ import annotations

import signal

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from atft.train.torchrun import exit_code


def _failed(*codes: int) -> ChildFailedError:
    failures = {rank: ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file="") for rank, code in
                enumerate(codes)}  # fmt: skip
    return ChildFailedError("atft.train", failures)


def test_a_signal_to_the_launcher_is_128_plus_the_signal() -> None:
    assert exit_code(SignalException("got SIGTERM", sigval=signal.SIGTERM)) == 143
    assert exit_code(SignalException("got SIGINT", sigval=signal.SIGINT)) == 130


def test_workers_that_were_all_preempted_are_a_preemption_and_anything_else_is_not() -> None:
    assert exit_code(_failed(143, 143)) == 143
    assert exit_code(_failed(143, 1)) is None  # one rank really failed: torchrun's own exit 1 and report stand
    assert exit_code(_failed(1)) is None
    assert exit_code(RuntimeError("rendezvous timed out")) is None
