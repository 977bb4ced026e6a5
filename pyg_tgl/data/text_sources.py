"""Text files to read: plain, gzip-compressed or members of a zip archive, opened in binary mode
and cut into blocks of whole lines for :func:`pyg_tgl.data.readers.read_table`."""
from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence

from .errors import DataFormatError
from .storage import PathLike


__all__ = ["TextSource", "source_from_path", "sources_from_zip", "iter_blocks", "decode_block"]


@dataclass
class TextSource:
    """A text file to read: a name used in messages, a function that opens it in binary mode and
    its size in bytes when known (for progress bars)."""

    name: str
    open: Callable[[], BinaryIO]
    size: Optional[int] = None


def source_from_path(path: PathLike) -> TextSource:
    """A :class:`TextSource` for a plain or ``.gz`` file, with a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix == ".gz":
        return TextSource(str(path), lambda: gzip.open(path, "rb"), None)
    return TextSource(str(path), lambda: open(path, "rb"), path.stat().st_size)


def sources_from_zip(path: PathLike, suffixes: Sequence[str] = (".csv", ".txt")) -> List[TextSource]:
    """One :class:`TextSource` per member of a zip archive (sorted by name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = sorted((i for i in zf.infolist()
                            if not i.is_dir() and i.filename.endswith(tuple(suffixes))),
                           key=lambda i: i.filename)
    except zipfile.BadZipFile as e:
        raise DataFormatError(f"{path}: not a valid zip archive ({e})") from None

    def opener(member: str) -> Callable[[], BinaryIO]:
        def _open() -> BinaryIO:
            zf = zipfile.ZipFile(path)
            f = zf.open(member)
            # Closing the member does not close the archive; tie their lifetimes together.
            orig_close = f.close

            def close() -> None:
                orig_close()
                zf.close()
            f.close = close  # type: ignore[method-assign]
            return f
        return _open

    return [TextSource(f"{path}:{i.filename}", opener(i.filename), i.file_size) for i in infos]


def iter_blocks(f: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """Whole-line blocks of about ``chunk_bytes`` bytes (the last may lack its newline)."""
    carry = b""
    while True:
        buf = f.read(chunk_bytes)
        if not buf:
            if carry:
                yield carry
            return
        buf = carry + buf
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        yield buf[:cut + 1]
        carry = buf[cut + 1:]


def decode_block(block: bytes, source: str, line_start: int, encoding: str) -> str:
    """``block`` as text, or :class:`DataFormatError` naming the line (``line_start`` is the
    block's first) of the first bytes that are not valid ``encoding``."""
    try:
        return block.decode(encoding)
    except UnicodeDecodeError as e:
        line = line_start + block.count(b"\n", 0, e.start)
        raise DataFormatError(f"{source}, line {line}: bytes that are not valid {encoding} text "
                              f"({e.reason}); expected a text file") from None
