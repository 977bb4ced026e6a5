"""On-disk plumbing shared by the data set loaders: the cache folder, atomic writes, ``.npy``
files that are written in chunks and read back memory-mapped, and fingerprints of raw files.

Everything written here is either complete or absent: files go to a temporary name first and are
moved into place with :func:`os.replace`; a processed data set is built in a temporary folder that
is renamed only once every array and its ``meta.json`` are written. A full disk surfaces as
:class:`CacheFullError`, which names the cache folder and the options that avoid it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]

#: Environment variable naming the cache folder (downloads and processed data sets).
DATA_ENV = "PYG_TGL_DATA"

# A fixed header length lets a writer reserve the header before the number of rows is known and
# rewrite it in place at the end; 128 bytes hold any 1-D or 2-D shape (numpy pads with spaces).
_NPY_HEADER_LEN = 128


def data_home() -> Path:
    """The cache folder: ``$PYG_TGL_DATA`` when set, else ``~/.cache/pyg_tgl``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pyg_tgl"


#: ``errno`` values that mean "the disk (or the user's quota) is full".
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class CacheFullError(OSError):
    """No space left where the processed-data cache is written. ``errno`` is the original one
    (``ENOSPC``/``EDQUOT``); the message names the folder and how to build elsewhere."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextmanager
def disk_full_guard(folder: PathLike) -> Iterator[None]:
    """Turns a full-disk :class:`OSError` raised inside the block into :class:`CacheFullError`
    naming ``folder`` and the options ``data.cache_dir`` / ``data.cache=false``; other errors
    pass unchanged. Whatever the block had half-written is its own to clean up (every writer
    here does)."""
    try:
        yield
    except OSError as e:
        if e.errno not in _FULL or isinstance(e, CacheFullError):
            raise
        at = f" ({e.filename})" if e.filename and str(e.filename) != "fsync" else ""
        raise CacheFullError(e.errno, (
            f"no space left on the device while writing the processed-data cache in {folder}"
            f"{at}; nothing half-built was kept. Free space there, choose another folder with "
            f"data.cache_dir=<folder> (or $PYG_TGL_DATA), or build in memory with "
            f"data.cache=false")) from e


def atomic_write_bytes(path: PathLike, payload: bytes) -> None:
    """Writes ``payload`` to ``path`` so that readers see either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: PathLike) -> Optional[Any]:
    """Returns the parsed JSON file, or ``None`` when it is missing or unreadable."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _unlink(path: PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-serialisable object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fingerprint(paths: Iterable[PathLike]) -> List[List[Any]]:
    """``[path, size, mtime_ns]`` of each file, so that a cache notices when a raw file changes."""
    out = []
    for p in paths:
        p = Path(p)
        st = p.stat()
        out.append([str(p.resolve()), int(st.st_size), int(st.st_mtime_ns)])
    return out


def sha256_file(path: PathLike, chunk_bytes: int = 1 << 22) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# .npy files
# ------------------------------------------------------------------------------------------------

def _npy_header(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": tuple(int(s) for s in shape)}
    body = repr(d).encode("latin1")
    prefix = b"\x93NUMPY\x01\x00"
    room = _NPY_HEADER_LEN - len(prefix) - 2 - 1  # 2: header length field, 1: final newline
    if len(body) > room:
        raise ValueError(f"shape {shape} is too long for a fixed .npy header")
    body = body + b" " * (room - len(body)) + b"\n"
    return prefix + len(body).to_bytes(2, "little") + body


class NpyWriter:
    r"""Appends rows to a ``.npy`` file whose final length is not known in advance.

    Rows are written through the Python file object (no memory map, so resident memory stays
    bounded by the chunk being written); :meth:`close` rewrites the fixed-size header with the
    real number of rows and syncs the file to disk. The result is a standard ``.npy`` file that
    :func:`numpy.load` reads (also with ``mmap_mode``). A full disk raises :class:`OSError` with
    ``errno.ENOSPC`` from :meth:`write` or :meth:`close`.

    Args:
        path: the file to write (created or truncated).
        dtype: element type.
        row_shape: shape of one row (``()`` for a 1-D array).
    """

    def __init__(self, path: PathLike, dtype: Any, row_shape: Sequence[int] = ()) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.rows = 0
        self._f = open(self.path, "wb")
        self._f.write(_npy_header(self.dtype, (0, *self.row_shape)))

    def write(self, rows: np.ndarray) -> None:
        """Appends ``rows`` (shape ``[n, *row_shape]``, cast to the writer's dtype)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {rows.shape[1:]} written to an "
                             f"array of rows {self.row_shape}")
        # Not ndarray.tofile: on a full disk it loses small writes silently (they sit in its own
        # stdio buffer) and reports large ones as "N requested and M written" without an errno.
        self._f.write(rows.reshape(-1).view(np.uint8).data)
        self.rows += int(rows.shape[0])

    def close(self) -> Path:
        """Finalises the header and closes the file; returns its path. When that fails (the
        buffered rows hit a full disk), the partial file is deleted and the error raised."""
        if not self._f.closed:
            try:
                self._f.flush()
                self._f.seek(0)
                self._f.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
                self._f.flush()
                os.fsync(self._f.fileno())  # a full disk that only shows at write-back, too
                self._f.close()
            except BaseException:
                self.abort()
                raise
        return self.path

    def abort(self) -> None:
        """Closes and deletes the partial file (also when closing fails, e.g. on a full disk
        whose buffered rows cannot be flushed)."""
        try:
            if not self._f.closed:
                self._f.close()
        except OSError:
            pass
        finally:
            _unlink(self.path)

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_npy(path: PathLike, array: np.ndarray, chunk_rows: int = 1 << 20) -> Path:
    """Saves ``array`` (possibly a memory map) as ``.npy`` in row chunks, so that copying a large
    memory-mapped array never materialises it in memory."""
    array = np.asarray(array)
    if array.ndim == 0:
        array = array.reshape(1)
    w = NpyWriter(path, array.dtype, array.shape[1:])
    try:
        for s in range(0, array.shape[0], chunk_rows):
            w.write(array[s:s + chunk_rows])
        w.close()
    except BaseException:
        w.abort()
        raise
    return Path(path)


def load_npy(path: PathLike, mmap: bool) -> np.ndarray:
    """Loads a ``.npy`` file, memory-mapped copy-on-write when ``mmap`` (so the result is writable
    for :func:`torch.from_numpy` while the file on disk never changes)."""
    return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)


# ------------------------------------------------------------------------------------------------
# Build folders
# ------------------------------------------------------------------------------------------------

def _owner_tag() -> str:
    # Host and process that own a temporary build folder, so that a later run can tell the
    # leftovers of a killed build (same host, process gone) from a build still in progress.
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def remove_dead_builds(final: PathLike) -> List[Path]:
    """Deletes the temporary folders of ``final``'s builds whose process was killed (this host,
    process no longer running); returns them. Builds of other hosts are left alone."""
    final = Path(final)
    host = socket.gethostname().replace(".", "_")
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.glob(f".{final.name}.*.tmp"):
        tag = p.name[len(final.name) + 2:].split(".", 1)[0]
        owner_host, _, pid = tag.rpartition("-")
        if p.is_dir() and owner_host == host and pid.isdigit() and _process_gone(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextmanager
def build_dir(final: PathLike) -> Iterator[Path]:
    """Yields a fresh temporary folder next to ``final`` and renames it to ``final`` when the
    block succeeds; on failure the temporary folder is deleted and ``final`` is untouched. When
    another process finished ``final`` first, its copy wins and ours is discarded. Leftovers of
    killed builds of ``final`` are deleted first (:func:`remove_dead_builds`)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_builds(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{_owner_tag()}.", suffix=".tmp",
                                dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if (final / "meta.json").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "meta.json").exists():
            raise


def remove_stale(parent: PathLike, keep: str, prefix: str) -> None:
    """Deletes ``parent/prefix*`` folders other than ``keep`` (outdated builds of a data set)."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        if p.is_dir() and p.name.startswith(prefix) and p.name != keep and not p.name.startswith("."):
            shutil.rmtree(p, ignore_errors=True)


def jsonable(d: Dict[str, Any]) -> Dict[str, Any]:
    """Converts paths and numpy scalars in a flat options mapping to JSON-friendly values."""
    out = {}
    for k, v in d.items():
        if isinstance(v, os.PathLike):
            v = str(v)
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, (list, tuple)):
            v = [str(x) if isinstance(x, os.PathLike) else x for x in v]
        out[k] = v
    return out
