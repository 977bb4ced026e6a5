"""On-disk plumbing shared by the data set loaders: the cache folder, atomic writes, ``.npy``
files that are written in chunks and read back memory-mapped, and fingerprints of raw files.

Everything written here is either complete or absent: files go to a temporary name first and are
moved into place with :func:`os.replace`; a processed data set is built in a temporary folder that
is renamed only once every array and its ``meta.json`` are written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
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

    Rows are written with ``ndarray.tofile`` (no memory map, so resident memory stays bounded by
    the chunk being written); :meth:`close` rewrites the fixed-size header with the real number of
    rows. The result is a standard ``.npy`` file that :func:`numpy.load` reads (also with
    ``mmap_mode``).

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
        rows.tofile(self._f)
        self.rows += int(rows.shape[0])

    def close(self) -> Path:
        """Finalises the header and closes the file; returns its path."""
        if not self._f.closed:
            self._f.flush()
            self._f.seek(0)
            self._f.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
            self._f.close()
        return self.path

    def abort(self) -> None:
        """Closes and deletes the partial file."""
        if not self._f.closed:
            self._f.close()
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
    with NpyWriter(path, array.dtype, array.shape[1:]) as w:
        for s in range(0, array.shape[0], chunk_rows):
            w.write(array[s:s + chunk_rows])
    return Path(path)


def load_npy(path: PathLike, mmap: bool) -> np.ndarray:
    """Loads a ``.npy`` file, memory-mapped copy-on-write when ``mmap`` (so the result is writable
    for :func:`torch.from_numpy` while the file on disk never changes)."""
    return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)


# ------------------------------------------------------------------------------------------------
# Build folders
# ------------------------------------------------------------------------------------------------

@contextmanager
def build_dir(final: PathLike) -> Iterator[Path]:
    """Yields a fresh temporary folder next to ``final`` and renames it to ``final`` when the
    block succeeds; on failure the temporary folder is deleted and ``final`` is untouched. When
    another process finished ``final`` first, its copy wins and ours is discarded."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
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
