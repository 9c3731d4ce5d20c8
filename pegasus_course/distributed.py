"""Distributed set-up: the process group under ``torchrun`` (NCCL on GPUs, gloo on CPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: str | torch.device | None = None) -> tuple[int, int, torch.device]:
    """Initialise the process group under ``torchrun`` (NCCL on GPUs, gloo on CPU).

    Returns (rank, world_size, device); without torchrun's variables, (0, 1, ``device`` or the best one:
    :func:`pegasus_course.device.choose_device`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        from .device import choose_device

        return 0, 1, choose_device(device)
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")
