"""Data-parallel training over several processes: the process group, ranks and collectives.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), :func:`setup` joins the process
group (NCCL on CUDA, gloo on CPU) and gives each process its device, ``cuda:LOCAL_RANK`` on GPUs.
A process group that the caller initialised itself is used as it is. Outside both, everything
here is a no-op for a single process, so callers need no branches of their own.

Before the group exists (in the command line, say), :func:`rank` reads ``RANK`` from the
environment, so that ``is_main_process()`` is right from the first line of a launched process.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from attrackt.errors import InputError

logger = logging.getLogger(__name__)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as err:
        raise InputError(f"environment variable {name}", f"not an integer: {value!r}") from err


def initialised() -> bool:
    """Whether a process group exists in this process."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """The number of processes: the group's size, else ``WORLD_SIZE`` (1 when unset)."""
    return dist.get_world_size() if initialised() else _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank: in the group, else ``RANK`` (0 when unset)."""
    return dist.get_rank() if initialised() else _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 when unset)."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True for rank 0 and for a process that is not part of a group: the one that writes."""
    return rank() == 0


def active() -> bool:
    """Whether this process trains together with others (an initialised group of size > 1)."""
    return initialised() and dist.get_world_size() > 1


def cleanup() -> None:
    """Leave and destroy the process group, if there is one.

    Collects garbage first: a ``DistributedDataParallel`` wrapper left in a reference cycle
    and freed after its group aborts the process at exit ("terminate called without an active
    exception", seen with gloo in about 1 of 10 two-process runs).
    """
    if initialised():
        gc.collect()
        dist.destroy_process_group()


def launched() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` > 1, as by torchrun)."""
    return _env_int("WORLD_SIZE", 1) > 1


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU for CUDA without an index when several processes train together
    (``cuda:LOCAL_RANK``); ``device`` unchanged otherwise."""
    if device.type == "cuda" and device.index is None and (launched() or active()):
        return torch.device("cuda", local_rank())
    return device


def start(device: torch.device | None = None) -> None:
    """Join the process group of a launch of several processes (a no-op otherwise, or if joined).

    The backend follows ``device``: NCCL for CUDA, gloo otherwise; without a device, both (CPU
    tensors go through gloo, CUDA tensors through NCCL), so that the command line can join
    before it knows the device. With CUDA, ``cuda:LOCAL_RANK`` becomes the current device. The
    group is destroyed at exit.
    """
    if not launched() or initialised():
        return
    if not dist.is_available():
        raise InputError("torch", "this build of PyTorch has no torch.distributed")
    cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if device is None:
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    else:
        backend = "nccl" if cuda else "gloo"
    own = torch.device("cuda", local_rank()) if cuda else None
    if own is not None:
        torch.cuda.set_device(own)
    dist.init_process_group(backend, device_id=own)
    atexit.register(cleanup)
    logger.info("process %d of %d joined (%s)", rank(), world_size(), backend)


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched with several processes; return this rank's device.

    With ``WORLD_SIZE`` > 1 and no group yet, the group is initialised from the environment
    (``torchrun`` sets it; see :func:`start`). Under a group of several processes a CUDA device
    without index becomes ``cuda:LOCAL_RANK`` (and the current device); an explicit index is
    kept. MPS cannot take part (no backend serves it).
    """
    device = local_device(device)
    start(device)
    if not active():
        return device
    if device.type == "mps":
        raise InputError(
            "device", "data-parallel training runs on CUDA or CPU, not MPS; pass device='cpu'"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def barrier() -> None:
    """Wait until every process gets here (no-op for one process)."""
    if active():
        dist.barrier()


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order; ``[value]`` alone."""
    if not active():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it (unchanged for one process)."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def broadcast_module(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (in place)."""
    if active():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(params: Sequence[torch.nn.Parameter]) -> bool:
    """Average the gradients over the ranks by hand; return whether every rank used every one.

    A parameter that no rank used keeps ``grad`` ``None`` (the optimiser skips it, as it would
    in a single process); one that some rank did not use counts as a zero gradient there.
    """
    if not active():
        return all(p.grad is not None for p in params)
    world = dist.get_world_size()
    device = params[0].device
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(used)
    for param, count in zip(params, used.tolist(), strict=True):
        if count == 0:
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad)
        param.grad.div_(world)
    return bool((used == world).all())


def wrap(module: nn.Module, find_unused_parameters: bool) -> DistributedDataParallel:
    """``module`` in ``DistributedDataParallel``, gradients kept as views of the communication
    buckets; buffers are made equal once, not at every forward (the models' are constants)."""
    own = inspect.signature(DistributedDataParallel).parameters
    buffers = "forward_sync_buffers" if "forward_sync_buffers" in own else "broadcast_buffers"
    return DistributedDataParallel(
        module,
        find_unused_parameters=find_unused_parameters,
        gradient_as_bucket_view=True,
        **{buffers: False},
    )


class LossModule(nn.Module):
    """``forward(batch)`` is ``loss_fn(model, batch)``: the unit that data parallelism wraps.

    ``loss_fn`` may call any method of ``model``, not only ``forward``; wrapping the pair in
    ``DistributedDataParallel`` still synchronises every gradient it produces.
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Mapping[str, torch.Tensor]:
        return self.loss_fn(self.model, batch)
