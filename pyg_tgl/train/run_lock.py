r"""One run per run directory: an exclusive lock held while a run writes there.

Hydra names a run directory after the second it starts in, so two runs launched together land in
the same directory; unguarded, both finish "successfully" and leave one run's configuration beside
the other's checkpoints and metrics, with their logs interleaved. The first run takes
``<run dir>/.pyg_tgl.lock``; a second run is refused before it writes anything (Hydra's ``.hydra/``
included), naming the process that holds it.

The lock is an operating-system lock on the open file (``fcntl.flock``; ``msvcrt.locking`` on
Windows), not the file's existence: it ends with its process, however that process ends (a
``kill -9`` too), so a crashed run never blocks its own ``resume=true``. The file keeps the
holder's pid, host and start time, only for the message.
"""
from __future__ import annotations

import datetime
import os
import socket
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Union

LOCK_NAME = ".pyg_tgl.lock"


class RunDirectoryBusy(RuntimeError):
    """Another live process holds the run directory's lock."""


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class RunDirLock:
    r"""Exclusive lock of a run directory for the lifetime of this process (or until
    :meth:`release`).

    Args:
        directory (str or Path): the run directory (created when missing).

    Raises:
        RunDirectoryBusy: from :meth:`acquire`, when another live process holds it.
    """

    def __init__(self, directory: Union[str, Path]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "RunDirLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = os.read(fd, 4096).decode(errors="replace").split()
            os.close(fd)
            who = (f"pid {holder[0]} on {holder[1]}, started {holder[2]}" if len(holder) >= 3
                   else "another process")
            raise RunDirectoryBusy(
                f"{self.directory} is in use by another run ({who}); wait for it to finish, or "
                f"give this run its own directory (hydra.run.dir=..., or hydra.sweep.dir=... "
                f"for a sweep)")
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {started}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        # The file stays: removing it could let a process that opened it just before lock a
        # file that no longer has a name while a third locks a new one.
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _is_secondary_rank() -> bool:
    from pyg_tgl.train.distributed import env_rank
    ranks = env_rank()
    return ranks is not None and ranks[0] > 0


def _resolved(config: Any, key: str) -> Optional[str]:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    # The run directory's pattern reads ${hydra:...}, which needs Hydra's config in place; run_job
    # installs the same one right after this callback, and ${now:...} is cached per config, so the
    # directory resolved here is the one the job uses.
    HydraConfig.instance().set_config(config)
    value = OmegaConf.select(config, key, default=None)
    return None if value is None else str(value)


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency; keeps the lock importable alone
    _HydraCallback = object  # type: ignore[misc,assignment]


class RunDirLockCallback(_HydraCallback):  # type: ignore[misc]
    """Hydra callback (``conf/config.yaml``: ``hydra.callbacks.run_dir_lock``) that locks the
    run directory, or a sweep's directory, before Hydra writes into it, and refuses a second
    run with ``error: ...`` and exit status 2. ``torchrun``'s secondary ranks write nothing and
    take no lock."""

    def __init__(self) -> None:
        self._locks: Dict[str, RunDirLock] = {}

    def _lock(self, config: Any, key: str) -> None:
        if _is_secondary_rank():
            return
        directory = _resolved(config, key)
        if directory is None:
            return
        try:
            self._locks[key] = RunDirLock(directory).acquire()
        except RunDirectoryBusy as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    def _unlock(self, key: str) -> None:
        lock = self._locks.pop(key, None)
        if lock is not None:
            lock.release()

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._lock(config, "hydra.run.dir")

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        self._unlock("hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._lock(config, "hydra.sweep.dir")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._unlock("hydra.sweep.dir")
