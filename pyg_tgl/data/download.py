"""Verified, resumable downloads.

A file is streamed to ``<name>.part`` (resumed with an HTTP ``Range`` request when a previous
attempt was interrupted), its size and SHA-256 are checked, and only then is it moved to its final
name with :func:`os.replace`. So the final name always holds a complete, verified file:

* an interrupted transfer (network error) keeps ``<name>.part`` so that the next call resumes it;
* a size or checksum mismatch deletes ``<name>.part`` and raises, so a corrupted download is never
  resumed nor used.

When no checksum is known in advance, the values of the first successful download are recorded in
a ``CHECKSUMS.json`` next to the file and every later download of that file is verified against
them (trust on first use).
"""
from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

from .storage import PathLike, atomic_write_json, read_json, sha256_file

__all__ = ["DownloadError", "download_url", "CHECKSUMS_FILE"]

#: Name of the per-folder record of the sizes and SHA-256 digests of downloaded files.
CHECKSUMS_FILE = "CHECKSUMS.json"

_USER_AGENT = "pyg_tgl-downloader/0.1"


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, size or checksum)."""


def _record_path(dest: Path) -> Path:
    return dest.parent / CHECKSUMS_FILE


def recorded_checksum(dest: PathLike) -> Optional[Dict[str, Any]]:
    """The size/SHA-256 recorded for ``dest`` at its first download, if any."""
    dest = Path(dest)
    rec = read_json(_record_path(dest)) or {}
    entry = rec.get(dest.name)
    return entry if isinstance(entry, dict) else None


def _record(dest: Path, url: str, size: int, digest: str) -> None:
    path = _record_path(dest)
    rec = read_json(path) or {}
    rec[dest.name] = {"size": size, "sha256": digest, "url": url,
                      "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(path, rec)


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only, checked)


def download_url(url: str, dest: PathLike, *, sha256: Optional[str] = None,
                 size: Optional[int] = None, progress: bool = True, retries: int = 3,
                 timeout: float = 60.0, chunk_bytes: int = 1 << 20,
                 record: bool = True) -> Path:
    r"""Downloads ``url`` to ``dest`` (resumable, verified, atomic).

    Args:
        url: ``http://`` or ``https://`` address.
        dest: final path of the file.
        sha256: expected SHA-256 hex digest; ``None`` uses the digest recorded at a previous
            download of this file (see module docs), else records this one.
        size: expected size in bytes (``None``: as for ``sha256``, or the server's
            ``Content-Length``).
        progress: show a tqdm progress bar.
        retries: attempts after a network error (each resumes where the previous stopped).
        timeout: socket timeout in seconds.
        chunk_bytes: read size.
        record: record size and digest in ``CHECKSUMS.json`` when they were not given.

    Returns:
        ``dest``. An existing ``dest`` whose size matches is returned without network access.

    Raises:
        DownloadError: HTTP error, network error after all retries (``dest.part`` is kept for
            resuming) or size/checksum mismatch (``dest.part`` is deleted).
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"download URL must be http(s), got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    known = recorded_checksum(dest)
    if sha256 is None and known is not None:
        sha256 = known.get("sha256")
    if size is None and known is not None:
        size = known.get("size")
    if dest.exists():
        have = dest.stat().st_size
        if size is None or have == int(size):
            return dest
        raise DownloadError(f"{dest} exists with {have} bytes but {size} are expected; delete it "
                            f"to download {url} again")

    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            total = _fetch(url, part, size, progress, timeout, chunk_bytes)
            break
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                socket.timeout, TimeoutError, OSError) as e:
            if isinstance(e, urllib.error.HTTPError):
                raise DownloadError(f"downloading {url}: HTTP {e.code} {e.reason}") from None
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"downloading {url} failed after {attempt} attempts ({e}); {have} bytes are "
                    f"kept in {part} and the next call resumes from there") from None
            time.sleep(min(2.0 ** attempt, 30.0) * 0.1)

    got = part.stat().st_size
    expected_size = int(size) if size is not None else total
    if expected_size is not None and got != expected_size:
        part.unlink()
        raise DownloadError(f"downloading {url}: got {got} bytes, expected {expected_size} "
                            f"(truncated or corrupted transfer); the partial file was deleted")
    digest = sha256_file(part)
    if sha256 is not None and digest.lower() != str(sha256).lower():
        part.unlink()
        raise DownloadError(f"downloading {url}: SHA-256 {digest} does not match the expected "
                            f"{sha256} (corrupted download or a changed upstream file); the "
                            f"partial file was deleted")
    os.replace(part, dest)
    if record and (known is None or known.get("sha256") is None):
        _record(dest, url, got, digest)
    return dest


def _fetch(url: str, part: Path, size: Optional[int], progress: bool, timeout: float,
           chunk_bytes: int) -> Optional[int]:
    """Streams ``url`` into ``part``, resuming from its current length; returns the total size
    announced by the server (or ``None``)."""
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > int(size):
        part.unlink()  # longer than the expected file: cannot be a prefix of it
        start = 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            # Range not satisfiable: the part file already holds the whole file.
            return size if size is not None else start
        raise
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        if start > 0 and status == 206:
            mode = "ab"
            content_range = resp.headers.get("Content-Range", "")
            total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range and \
                not content_range.endswith("*") else (start + int(length) if length else None)
        else:
            # Full body (the server ignored the range, or a fresh download).
            mode, start = "wb", 0
            total = int(length) if length is not None else None
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total if total is not None else size, initial=start, unit="B",
                       unit_scale=True, unit_divisor=1024, desc=part.name[:-5])
        try:
            with open(part, mode) as f:
                received = 0
                while True:
                    buf = resp.read(chunk_bytes)
                    if not buf:
                        break
                    f.write(buf)
                    received += len(buf)
                    if bar is not None:
                        bar.update(len(buf))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
        if length is not None and received != int(length):
            raise http.client.IncompleteRead(b"", int(length) - received)
    return total
