r"""Data-parallel training on several processes and machines with PyTorch's own engine
(:mod:`torch.distributed`, :class:`~torch.nn.parallel.DistributedDataParallel`).

How work is split (TGL, Zhou et al., VLDB 2022, multi-GPU training): with ``W`` ranks and a
per-rank batch size ``b``, every step takes the next *global* batch of ``W * b`` events of the
chronological stream (random chunk scheduling, when on, moves the global batch boundaries), and
rank ``r`` trains on the ``r``-th consecutive slice of it. Negatives are drawn once for the global
batch by every rank's identically seeded generator, so each rank keeps exactly the negatives one
process would have drawn for those events; each rank samples the neighbourhoods of its slice.

Why the result equals one process with the global batch:

* gradients: DDP averages the ranks' gradients; each rank's loss is weighted by
  ``W * n_r / n`` (``n_r`` events of ``n``), so the average is the gradient of the global
  batch's loss, also when the last batch does not split evenly;
* node memory, mailbox and pair history: every rank's step returns the state update of its
  slice (:meth:`~pyg_tgl.nn.TemporalGNN.step`: node ids, new memories, timestamps, mails, and
  the events for the pair history), the updates of all ranks are exchanged with ``all_gather``
  (:func:`gather_update`) and every rank applies their concatenation in rank (= event) order, so
  "the latest event wins" resolves exactly as in one process and the replicas stay identical;
* evaluation: every rank scores its slice of each evaluation batch, the scores are gathered in
  rank order and every rank computes the same metrics over the whole split.

Exceptions (same distribution, different draws): dropout masks and the random streams of
``uniform`` neighbour sampling depend on a root's position in its batch.

On one machine the ranks share the data set and the T-CSR through memory-mapped cache files
(the page cache holds one copy); every rank keeps its own replica of memory and mailbox (their
cost per machine is in ``docs/scaling.md``). Rank 0 writes every output (checkpoints atomically,
``metrics.json``, the plot); a resumed run reads the checkpoint on rank 0 and broadcasts it.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from pyg_tgl.config.hardware import BACKENDS

log = logging.getLogger("pyg_tgl")

_ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


class DistributedError(RuntimeError):
    """A rank failed; the message names the rank and why."""


@dataclass
class DistEnv:
    """This process's place among the ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")  #: where collectives take their tensors
    #: bytes this rank contributed to :meth:`all_gather_cat` so far (padding included)
    gathered_bytes: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops for one process) ----------------------------------------------------

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def local_rank_first(self) -> Iterator[None]:
        """The body runs on the first rank of each machine, then on the others: work that
        fills a per-machine cache (processed data, T-CSR) is done once, and read by the rest."""
        if self.local_rank != 0:
            self.barrier()
        try:
            yield
        finally:
            if self.local_rank == 0:
                self.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for checkpoints and small values)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order."""
        if not self.enabled:
            return [obj]
        out: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_reduce_sum(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        out = x.to(self.device).clone()
        torch.distributed.all_reduce(out)
        return out.to(x.device)

    def all_gather_cat(self, groups: Sequence[Sequence[Tensor]]) -> List[List[Tensor]]:
        """Concatenates, in rank order, the tensors of every rank.

        ``groups`` is a list of groups; the tensors of one group share their number of rows
        (which may differ between ranks and between groups), and have the same dtype and row
        shape on every rank. Everything travels in one ``all_gather`` of bytes (plus one of the
        row counts), whatever the number of tensors.
        """
        groups = [[t.detach().to(self.device).contiguous() for t in g] for g in groups]
        if not self.enabled:
            return [list(g) for g in groups]
        rows = torch.tensor([g[0].size(0) if g else 0 for g in groups], dtype=torch.long,
                            device=self.device)
        all_rows = [torch.empty_like(rows) for _ in range(self.world_size)]
        torch.distributed.all_gather(all_rows, rows)
        counts = torch.stack(all_rows).cpu()  # [world, groups]
        # Bytes per row of every tensor, from the local shapes (equal on every rank).
        row_bytes = [[_row_bytes(t) for t in g] for g in groups]
        sizes = [int(sum(counts[r, i] * sum(row_bytes[i]) for i in range(len(groups))))
                 for r in range(self.world_size)]
        payload = torch.cat([_as_bytes(t) for g in groups for t in g] +
                            [torch.empty(0, dtype=torch.uint8, device=self.device)])
        width = max(sizes)
        self.gathered_bytes += width
        padded = torch.zeros(width, dtype=torch.uint8, device=self.device)
        padded[:payload.numel()] = payload
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch.distributed.all_gather(gathered, padded)
        out: List[List[List[Tensor]]] = [[[] for _ in g] for g in groups]
        for r, buf in enumerate(gathered):
            offset = 0
            for i, g in enumerate(groups):
                n = int(counts[r, i])
                for j, t in enumerate(g):
                    nbytes = n * row_bytes[i][j]
                    # A copy starts at offset 0, so the dtype view is aligned.
                    chunk = buf[offset:offset + nbytes].clone()
                    out[i][j].append(chunk.view(t.dtype).view((n,) + tuple(t.shape[1:])))
                    offset += nbytes
        return [[torch.cat(parts) for parts in g] for g in out]


def gather_update(env: DistEnv, update: Any) -> Any:
    """The :class:`~pyg_tgl.nn.StateUpdate` of all ranks concatenated in rank order: the pair
    events, then the memory writes (``None`` parts stay ``None``)."""
    events, writes = update.events, update.memory
    if events is not None:
        events = type(events)(*env.all_gather_cat([list(events)])[0])
    if writes is not None:
        first, second = env.all_gather_cat([list(writes[:3]), list(writes[3:])])
        writes = type(writes)(*first, *second)
    return type(update)(writes, events)


def _row_bytes(t: Tensor) -> int:
    n = 1
    for d in t.shape[1:]:
        n *= int(d)
    return n * t.element_size()


def _as_bytes(t: Tensor) -> Tensor:
    flat = t.reshape(-1)
    return flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# Process group
# ------------------------------------------------------------------------------------------------

def env_rank() -> Optional[Tuple[int, int, int, int]]:
    """``(rank, world_size, local_rank, local_world_size)`` set by ``torchrun`` (or
    :func:`launch_local`), or ``None`` outside a distributed launch."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return rank, world, local, local_world


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``nccl`` for CUDA devices, ``gloo`` otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"hardware.distributed.backend={backend!r} is unknown; allowed values: "
                         f"{list(BACKENDS)}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("hardware.distributed.backend='nccl' needs CUDA devices; use 'gloo' "
                         "(or 'auto') on CPU")
    return backend


def init_distributed(device: torch.device, backend: str = "auto",
                     timeout_s: float = 300.0) -> Tuple[DistEnv, torch.device]:
    """Joins the process group described by the environment (``torchrun`` sets it); a no-op
    returning rank 0 of 1 without one.

    Returns:
        ``(env, device)``: on CUDA each rank takes ``cuda:LOCAL_RANK``.
    """
    ranks = env_rank()
    if ranks is None or ranks[1] == 1:
        return DistEnv(device=device), device
    rank, world, local, local_world = ranks
    if device.type == "cuda":
        device = torch.device("cuda", local % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    name = resolve_backend(backend, device)
    if not torch.distributed.is_initialized():
        # A rank that dies or hangs makes the others' collectives fail after this timeout
        # instead of waiting forever.
        torch.distributed.init_process_group(
            name, timeout=datetime.timedelta(seconds=float(timeout_s)))
    _thread_lock_for_progress_bars()
    env = DistEnv(rank=rank, world_size=world, local_rank=local, local_world_size=local_world,
                  device=device if name == "nccl" else torch.device("cpu"))
    log.info("rank %d of %d (local %d of %d), backend %s, device %s", rank, world, local,
             local_world, name, device)
    return env, device


def _thread_lock_for_progress_bars() -> None:
    """tqdm guards its bars with a multiprocessing lock by default, a named semaphore that a
    rank ended by :func:`exit_without_teardown` never releases (the resource tracker then warns
    of a leaked semaphore at every run's end); a rank's bars only need a thread lock."""
    import threading

    from tqdm import tqdm
    tqdm.set_lock(threading.RLock())


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def searches_unused_parameters(model: torch.nn.Module, requested: Optional[bool] = None) -> bool:
    """Whether DDP must search every step's autograd graph for parameters the step left unused
    (``find_unused_parameters``): ``requested`` when given, else whether ordinary steps of
    ``model`` leave parameters unused, which is the case for several snapshots (``history >
    1``, DySAT: an older snapshot without any edge in a whole batch leaves its attention layers
    out of the graph).

    Single-snapshot models use every parameter in every step, except where a hop of a step has
    no sampled edge at all (a few events at the start of the stream): there
    :class:`~pyg_tgl.train.loop.LinkStep` gives every parameter a zero gradient, in one process
    as under DDP, so the search (and torch's warning each run when it finds nothing) is not
    needed.
    """
    if requested is not None:
        return bool(requested)
    return int(getattr(model, "history", 1) or 1) > 1


def wrap_ddp(module: torch.nn.Module, env: DistEnv, device: torch.device,
             find_unused_parameters: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else ``module``. Buffers are not
    broadcast: node memory is kept identical by the write exchange, not by DDP."""
    if not env.enabled:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
               else {"broadcast_buffers": False})
    return DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters, **no_sync)


def worker_threads(local_world_size: int, requested: Optional[int]) -> int:
    """Intra-op threads per rank: the request, else the cores shared evenly among local ranks
    (more threads than cores make every rank slower)."""
    if requested:
        return int(requested)
    return max(1, (os.cpu_count() or 1) // max(local_world_size, 1))
