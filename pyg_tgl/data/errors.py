"""The error type of malformed data files, in a module of its own so that every reader module can
raise it without importing another (:mod:`pyg_tgl.data.readers` re-exports it)."""
from __future__ import annotations

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file, the line (where
    one is at fault) and what was expected."""
