"""A full disk while the processed-data cache is written: a clear error naming the folder and the
options that avoid it, no half-built cache that a later load would trust, no temporary debris, and
a rebuild with identical data once there is space again.

The disk is "filled" in three ways: a file that :class:`NpyWriter` (every array, including the
reader's spill files) creates is really ``/dev/full``, where the kernel fails every write with
``ENOSPC`` as on a full disk; or :meth:`NpyWriter.write` writes part of its rows and then fails; or
``os.fsync`` fails for the small atomic files (``meta.json``, the split).
"""
from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

from pyg_tgl.data import storage
from pyg_tgl.data.datasets import load_dataset

# Unix times (so time_shift rewrites t), text-free integer ids with gaps (so ids are remapped and
# node_ids is written), an edge feature and a label column: every kind of array of a CSV build.
ROWS = [(10 + (i * 7) % 23, 40 + (i * 5) % 17, 1_600_000_000 + 3 * i, 0.5 * i, i % 2)
        for i in range(60)]


def _write_csv(path: Path) -> Path:
    path.write_text("src,dst,t,f,y\n" + "".join(f"{a},{b},{c},{d},{e}\n" for a, b, c, d, e in ROWS))
    return path


def _load(path: Path, cache_dir: Path, **kw):
    return load_dataset("csv", path=str(path), edge_features=["f"], label="y",
                        cache_dir=str(cache_dir), progress=False, **kw)


def _disk_full(what: str) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), what)


class _FullAfter:
    """Patches ``NpyWriter.write``: call number ``fail_at`` (1-based) writes half its rows, then
    raises ENOSPC; ``fail_at=None`` only counts the calls."""

    def __init__(self, fail_at=None) -> None:
        self.fail_at = fail_at
        self.calls: List[str] = []
        self._orig = storage.NpyWriter.write

    def __call__(self, writer, rows):
        self.calls.append(writer.path.name)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            rows = np.asarray(rows)
            self._orig(writer, rows[: len(rows) // 2])
            writer._f.flush()
            raise _disk_full(str(writer.path))
        return self._orig(writer, rows)

    def install(self, mp: pytest.MonkeyPatch) -> "_FullAfter":
        mp.setattr(storage.NpyWriter, "write", lambda writer, rows: self(writer, rows))
        return self


class _FullDevice:
    """Patches the ``open`` of :mod:`pyg_tgl.data.storage`: the ``fail_at``-th file that
    NpyWriter creates (1-based) is opened on ``/dev/full`` instead; ``fail_at=None`` only counts.
    The writer keeps its own path, so deleting its partial file never touches the device."""

    def __init__(self, fail_at=None) -> None:
        self.fail_at = fail_at
        self.created = 0

    def __call__(self, path, mode="r", *args, **kwargs):
        if mode == "wb":
            self.created += 1
            if self.created == self.fail_at:
                return builtins.open("/dev/full", "wb")
        return builtins.open(path, mode, *args, **kwargs)

    def install(self, mp: pytest.MonkeyPatch) -> "_FullDevice":
        mp.setattr(storage, "open", self, raising=False)
        return self


def _leftovers(root: Path) -> List[str]:
    """Everything under ``root`` except complete builds' own files."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.name.endswith(".tmp") or ".tmp" in p.parent.name or p.name.startswith("."):
            out.append(str(p.relative_to(root)))
    return out


def _assert_same(a, b) -> None:
    for k in ("src", "dst", "t", "msg", "y"):
        assert torch.equal(getattr(a.data, k), getattr(b.data, k)), k
    assert np.array_equal(np.asarray(a.node_ids), np.asarray(b.node_ids))
    assert a.num_nodes == b.num_nodes and a.time_origin == b.time_origin
    for k in ("train", "val", "test"):
        assert a.split[k] == b.split[k]
    assert torch.equal(a.split["inductive_test_mask"], b.split["inductive_test_mask"])


def _writes_of_a_build(tmp_path: Path):
    """``(names of the NpyWriter.write calls, number of files NpyWriter creates)`` of a build."""
    writes, files = _FullAfter(), _FullDevice()
    with pytest.MonkeyPatch.context() as mp:
        writes.install(mp)
        files.install(mp)
        _load(_write_csv(tmp_path / "count.csv"), tmp_path / "count-cache")
    return writes.calls, files.created


def test_a_build_writes_several_arrays_through_the_patched_writer(tmp_path):
    # The failure points below are only meaningful if the build goes through NpyWriter.
    calls, files = _writes_of_a_build(tmp_path)
    assert {"read_src.npy", "read_dst.npy", "t_shifted.npy"} <= set(calls)
    assert len(calls) >= 5 and files == len(set(calls))


_POINTS = [(mode, point) for mode in ("device", "partial") for point in ("first", "middle", "last")]


@pytest.mark.parametrize("mode,point", _POINTS + [("fsync", "meta.json"), ("fsync", "split")])
def test_disk_full_while_writing_the_cache(tmp_path, mode, point, monkeypatch):
    if mode == "device" and not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    csv = _write_csv(tmp_path / "events.csv")
    reference = _load(csv, tmp_path / "unused", cache=False)
    cache = tmp_path / "cache"
    writes, files = _writes_of_a_build(tmp_path)
    n = len(writes) if mode == "partial" else files
    fail_at = {"first": 1, "middle": (n + 1) // 2, "last": n}.get(point)
    if mode == "fsync":
        # fsync fails while the atomic writer writes the chosen file (meta.json or the split).
        writing: List[str] = []
        atomic, os_fsync = storage.atomic_write_bytes, os.fsync

        def atomic_write_bytes(path, payload):
            writing.append(Path(path).name)
            try:
                atomic(path, payload)
            finally:
                writing.pop()

        def fsync(fd):
            if writing and writing[-1].startswith(point.replace(".json", "")):
                raise _disk_full("fsync")
            os_fsync(fd)
        monkeypatch.setattr(storage, "atomic_write_bytes", atomic_write_bytes)
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        (_FullDevice if mode == "device" else _FullAfter)(fail_at).install(monkeypatch)
    with pytest.raises(OSError) as info:
        _load(csv, cache)
    monkeypatch.undo()

    err = info.value
    message = str(err)
    assert err.errno == errno.ENOSPC
    assert "\n" not in message and "no space left" in message.lower()
    assert str(cache) in message
    assert "data.cache_dir" in message and "data.cache=false" in message
    # Nothing a later load would trust: no complete-looking build unless it is complete, and no
    # temporary folders or files.
    assert _leftovers(cache) == []
    builds = [p for p in cache.iterdir() if p.is_dir()] if cache.exists() else []
    for b in builds:
        assert (b / "meta.json").is_file() and point == "split", b

    again = _load(csv, cache)
    _assert_same(again, reference)
    assert _leftovers(cache) == []
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1


def test_disk_full_while_caching_the_tcsr(tmp_path, monkeypatch):
    pytest.importorskip("pyg_tgl._core", reason="the C++ extension pyg_tgl._core is not built")
    from pyg_tgl.data.tcsr import TCSR
    csv = _write_csv(tmp_path / "events.csv")
    cache = tmp_path / "cache"
    ds = _load(csv, cache)
    savez = np.savez

    def full_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")  # part of the archive reaches the disk, then it is full
        raise _disk_full("savez")
    monkeypatch.setattr(np, "savez", full_savez)
    full = r"no space left .* data\.cache_dir=.* data\.cache=false"
    with pytest.raises(OSError, match=full) as info:
        ds.tcsr()
    assert info.value.errno == errno.ENOSPC and str(ds.cache_dir) in str(info.value)
    assert not (ds.cache_dir / "tcsr_rev.npz").exists() and _leftovers(cache) == []
    monkeypatch.setattr(np, "savez", savez)
    graph = _load(csv, cache).tcsr()
    assert (ds.cache_dir / "tcsr_rev.npz").is_file()
    fresh = TCSR.from_data(ds.data, num_nodes=ds.num_nodes, add_reverse=True)
    for k in ("indptr", "indices", "eid", "ts"):
        assert torch.equal(torch.as_tensor(getattr(graph, k)), torch.as_tensor(getattr(fresh, k)))


def test_a_killed_build_leaves_debris_that_the_next_build_removes(tmp_path):
    import socket
    import subprocess
    import sys

    csv = _write_csv(tmp_path / "events.csv")
    cache = tmp_path / "cache"
    first = _load(csv, cache)
    final = first.cache_dir
    # What a build killed with SIGKILL leaves: its temporary folder, named after its host and
    # process. One of a process that has exited, one of this (running) process, one of another
    # host: only the first is debris.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead_pid = int(child.stdout)
    host = socket.gethostname().replace(".", "_")
    dead = final.parent / f".{final.name}.{host}-{dead_pid}.abc123.tmp"
    alive = final.parent / f".{final.name}.{host}-{os.getpid()}.def456.tmp"
    other = final.parent / f".{final.name}.elsewhere-{dead_pid}.ghi789.tmp"
    for p in (dead, alive, other):
        p.mkdir()
        (p / "read_src.npy").write_bytes(b"\x93NUMPY partial")
    import shutil
    shutil.rmtree(final)  # force a rebuild of the same folder
    again = _load(csv, cache)
    _assert_same(again, first)
    assert not dead.exists() and alive.exists() and other.exists()


_ON_A_SMALL_TMPFS = r"""
import json, os, subprocess, sys
from pathlib import Path
import torch
from pyg_tgl.data.datasets import load_dataset

csv, cache = Path(sys.argv[1]), Path(sys.argv[2])
opts = dict(path=str(csv), cache_dir=str(cache), progress=False)
out = {}
try:
    load_dataset("csv", **opts)
    out["error"] = None
except Exception as e:  # noqa: BLE001 - the test inspects whatever came out
    out["error"] = [type(e).__name__, getattr(e, "errno", None), str(e)]
out["left"] = sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))
subprocess.run(["mount", "-o", "remount,size=16m", str(cache)], check=True)  # space is back
again, ref = load_dataset("csv", **opts), load_dataset("csv", **dict(opts, cache=False))
out["same"] = all(torch.equal(getattr(again.data, k), getattr(ref.data, k)) for k in ("src", "dst", "t"))
out["builds"] = sorted(p.name for p in cache.iterdir())
print(json.dumps(out))
"""


def test_a_real_full_tmpfs(tmp_path):
    """The brief's own simulation: a 256 KiB tmpfs (mounted in a private user and mount
    namespace, so no privileges are needed) under a build that needs about 1 MiB."""
    import json
    import sys

    from cli import cli_env, private_tmpfs_or_skip, run_unshared, write_unix_time_events

    csv = write_unix_time_events(tmp_path / "events.csv")
    cache = tmp_path / "small"
    cache.mkdir()
    script = tmp_path / "build.py"
    script.write_text(_ON_A_SMALL_TMPFS)
    line = private_tmpfs_or_skip(cache, "256k", [sys.executable, str(script), str(csv),
                                                 str(cache)])
    proc = run_unshared(line, cli_env(tmp_path / "home"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    kind, code, message = out["error"]
    assert (kind, code) == ("CacheFullError", errno.ENOSPC), out["error"]
    assert str(cache) in message and "data.cache_dir" in message and "data.cache=false" in message
    assert out["left"] == []  # nothing half-built, no temporary debris
    assert out["same"] and len(out["builds"]) == 1
