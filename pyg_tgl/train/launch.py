"""Starting the ranks of one machine without ``torchrun`` (:func:`launch_local`), and naming
the rank whose failure stopped a data-parallel run (not those that only lost it as a peer).

What the ranks do once started is :mod:`pyg_tgl.train.distributed`.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from pyg_tgl.train.distributed import DistributedError

log = logging.getLogger("pyg_tgl")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(local_rank: int, fn: Callable[..., Any], nprocs: int, port: int,
            args: Tuple[Any, ...]) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "RANK": str(local_rank), "LOCAL_RANK": str(local_rank),
                       "WORLD_SIZE": str(nprocs), "LOCAL_WORLD_SIZE": str(nprocs)})
    try:
        fn(*args)
    except Exception:
        # The launcher's error is one line; the traceback goes to this rank's log (stderr, and
        # train.log on rank 0). A collective that lost its peer is a consequence: one line.
        import traceback
        trace = traceback.format_exc()
        cause = _peer_cause(trace)
        if cause:
            log.error("rank %d stopped: %s (%s)", local_rank, cause, _exception_line(trace, 200))
        else:
            log.error("rank %d failed:\n%s", local_rank, trace.rstrip())
        raise
    exit_without_teardown()


def exit_without_teardown(code: int = 0) -> None:
    """Ends a finished rank with ``os._exit`` after flushing its output and logs.

    The interpreter's teardown after a data-parallel run aborted now and then (2 CPU cores, gloo:
    3 of about 120 two-rank runs, one of them in CI; 0 of 80 with this exit): ``terminate called
    without an active exception``, SIGABRT, with no Python frame left on the stack, i.e. a C++
    object of the distributed stack (DDP's reducer, gloo's threads) destroyed at exit in an
    order that kills the process after all of its work was done. Everything a rank produces is
    written (atomically) before it returns, so skipping that teardown loses nothing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def launch_local(fn: Callable[..., Any], nprocs: int, args: Tuple[Any, ...] = (),
                 grace_s: float = 5.0) -> None:
    """Runs ``fn(*args)`` in ``nprocs`` fresh processes (ranks ``0..nprocs-1`` of one machine,
    rendezvous on 127.0.0.1), as ``torchrun --nproc_per_node=nprocs`` would.

    When a rank fails, the others get ``grace_s`` seconds to fail too (a collective that loses a
    peer fails at once) and are then stopped; :class:`DistributedError` names the rank that
    failed first on its own, not those that only lost it as a peer.
    """
    import multiprocessing.connection

    import torch.multiprocessing as mp
    port = free_port()
    # Ranks that share cores must not spin: an idle OpenMP pool (torch's, or the sampler's)
    # busy-waits by default and steals the core another rank is computing on (on 2 cores:
    # sampling 7.6 -> 0.6 ms and 17% more events/s per step, experiments/bench_ddp.py). Read at
    # OpenMP start-up, so it is set for the children before they exist.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    context = mp.start_processes(_worker, args=(fn, nprocs, port, tuple(args)), nprocs=nprocs,
                                 join=False, start_method="spawn")
    procs = context.processes
    pending = {p.sentinel: rank for rank, p in enumerate(procs)}
    failed: List[int] = []  # in the order their exits were seen
    deadline = None
    while pending and (deadline is None or time.monotonic() < deadline):
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        for sentinel in multiprocessing.connection.wait(list(pending), timeout=wait):
            rank = pending.pop(sentinel)
            procs[rank].join()
            if procs[rank].exitcode != 0:
                failed.append(rank)
                deadline = deadline or time.monotonic() + grace_s
    for rank in pending.values():  # still running after the grace period
        procs[rank].kill()
        procs[rank].join()
    if failed:
        raise DistributedError(_failure_report(failed, sorted(pending.values()), procs,
                                               context.error_files))


#: Messages of a collective that failed because another rank died, or that timed out waiting
#: for one (gloo, NCCL).
_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "remote worker",
              "remote process", "communicator was aborted", "Broken pipe")
_TIMED_OUT = ("Timed out waiting", "collective operation timeout", "DistBackendError")


def _peer_cause(trace: Optional[str]) -> Optional[str]:
    """Why a rank's traceback is a consequence of another rank, or ``None`` if it is not."""
    if trace is None:
        return None
    if any(m in trace for m in _LOST_PEER):
        return "another rank failed"
    if any(m in trace for m in _TIMED_OUT):
        return "a collective timed out waiting for another rank"
    return None


def _failure_report(failed: List[int], stopped: List[int], procs: Sequence[Any],
                    error_files: Sequence[str]) -> str:
    """One line naming the rank whose failure stopped the run: the first that died of a signal
    or raised anything but a consequence of another rank (:func:`_peer_cause`); else the ranks
    that were still running (hung: the others' collectives timed out waiting for them)."""
    reports = {}
    for rank in failed:
        trace = None
        if os.access(error_files[rank], os.R_OK):
            import pickle
            with open(error_files[rank], "rb") as fh:
                trace = pickle.load(fh)
            os.unlink(error_files[rank])
        reports[rank] = trace
    own = [r for r in failed if _peer_cause(reports[r]) is None]
    if not own and stopped:
        return (f"rank(s) {stopped} stopped responding and were stopped: rank {failed[0]}'s "
                f"collectives timed out after hardware.distributed.timeout_s "
                f"({_exception_line(reports[failed[0]] or '', 200)})")
    rank = (own or failed)[0]
    code = procs[rank].exitcode
    if reports[rank] is not None:
        what = f"failed (the other ranks were stopped): {_exception_line(reports[rank])}"
    elif code < 0:
        import signal
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"died (process {rank} terminated with signal {name}); the other ranks were stopped"
    else:
        what = f"died (process {rank} exited with code {code}); the other ranks were stopped"
    return f"rank {rank} {what}"


def _exception_line(report: str, limit: int = 400) -> str:
    """``Type: message`` of the last exception in a child's traceback report (its first line;
    :func:`_worker` logs the full traceback on the child's stderr)."""
    lines = report.strip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        head = lines[i].split(":", 1)[0]
        if head and not lines[i].startswith(" ") and head.replace(".", "").isidentifier() and \
                (head.endswith(("Error", "Exception", "Interrupt")) or head == "AssertionError"):
            return lines[i][:limit]
    return (lines[-1] if lines else report)[:limit]
