"""Data-parallel training under ``torchrun`` (and a Kubeflow PyTorchJob, which starts torchrun per pod).

The process group is read from the environment torchrun and the training operator set (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; the elastic agent sets the same names): gloo on
CPU, NCCL on GPUs. Each rank trains on disjoint days of every epoch (``DaySampler``'s rank share); the
gradients are averaged over ranks before clipping, so every rank takes the same optimizer step. What the
health monitors see each day is gathered from every rank, so their state -- and every reset or abort they
decide -- is identical on all ranks. Only rank 0 writes the run directory, checkpoints and events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from atft.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (size 1: no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_type: str) -> World:
    """Join the process group torchrun describes in the environment; a single process needs none."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError([f"WORLD_SIZE / RANK / LOCAL_RANK must be integers ({exc})"], "environment") from exc
    if size == 1:
        return World()
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            [f"WORLD_SIZE={size} but {', '.join(missing)} is not set (start with torchrun)"], "environment"
        )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=rank, world_size=size)
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return World(rank, size, local_rank)


def average_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Average the gradients over ranks in one flat all-reduce (a missing gradient counts as zeros)."""
    if not world.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
        offset += g.numel()


def all_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of ``tensor`` over ranks (a copy; the input is left as it was)."""
    total = tensor.clone()
    if world.distributed:
        dist.all_reduce(total)
    return total


def sum_count(count: int, world: World, device: torch.device) -> int:
    """The sum of an integer counter over ranks (on ``device``: NCCL reduces only GPU tensors)."""
    if not world.distributed:
        return count
    return int(all_sum(torch.tensor([count], device=device), world))


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (SIGTERM reaches the ranks at slightly different times)."""
    return sum_count(int(flag), world, device) > 0


def gather_rows(row: torch.Tensor, world: World) -> list[torch.Tensor]:
    """``row`` of every rank, in rank order (one small all-gather; rows must have one length)."""
    if not world.distributed:
        return [row]
    rows = [torch.empty_like(row) for _ in range(world.size)]
    dist.all_gather(rows, row.contiguous())
    return rows
