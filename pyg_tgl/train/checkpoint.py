"""Atomic checkpoints and RNG state capture.

A checkpoint is a plain dictionary saved with :func:`torch.save`. It is written to a temporary file
in the destination directory, flushed to disk and moved over the old file with :func:`os.replace`,
so a run killed at any moment leaves either the previous complete checkpoint or the new complete
one, never a truncated file. Everything stored is loadable with ``torch.load(weights_only=True)``
(tensors, numbers, strings, lists, dicts), so loading a checkpoint never runs pickled code.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); the previous checkpoint at
    the same path is intact. The message names the file, the reason and the free space."""


def _write_failed(path: Path, error: OSError) -> CheckpointWriteError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    previous = "the previous one is intact" if path.exists() else "there was none before"
    failed = CheckpointWriteError(
        f"could not write the checkpoint {path}: {error.strerror or error} ({free}); {previous}. "
        f"Free some space (or choose another run directory, hydra.run.dir=...), then continue "
        f"with resume=true")
    failed.errno = error.errno
    return failed


def _os_error_in(error: BaseException) -> Optional[OSError]:
    """The file system's error behind ``error``: torch's zip writer reports a failed write of
    its file object as a ``RuntimeError`` whose context is the ``OSError``."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Writes ``state`` to ``path`` atomically (temporary file + fsync + :func:`os.replace`).

    Temporary files that an earlier, killed write of the same checkpoint left behind are
    removed first (a run directory has one writer, see :mod:`pyg_tgl.train.run_lock`).

    Args:
        state (dict): the checkpoint (tensors, numbers, strings and nested lists/dicts).
        path (str or pathlib.Path): destination; parent directories are created.

    Returns:
        pathlib.Path: the destination path.

    Raises:
        CheckpointWriteError: the file system refused the write (e.g. no space left); the
            previous checkpoint at ``path`` is untouched and no temporary file is left.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_failed(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = _os_error_in(e)
        if cause is not None:
            raise _write_failed(path, cause) from e
        raise
    # Persist the rename itself (directory entry) where the platform allows it.
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> Dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: naming the missing path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> Dict[str, Any]:
    """Captures the Python, NumPy and torch (CPU and CUDA) generators as weights-only data."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: Dict[str, Any] = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restores generators captured by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy and torch; with ``deterministic`` also asks torch for deterministic
    kernels so that CPU runs repeat bit for bit."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
