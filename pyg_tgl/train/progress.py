"""Progress of long passes: a tqdm bar on a terminal, plain log lines everywhere else.

A bar redrawn with carriage returns is unreadable in a log file (each run's log becomes mostly
bar frames), so without a terminal a pass that takes long reports itself as an ordinary log line
at most once a minute, and short passes say nothing beyond the epoch's summary line.
"""
from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("pyg_tgl")


class LogProgress:
    r"""A tqdm-like counter that logs ``desc: done of total events (x%), y ev/s`` at INFO, at
    most every ``every_s`` seconds.

    Args:
        total (int): events of the pass.
        desc (str): what the pass is (``epoch 3``, ``test``).
        every_s (float): seconds between two lines.
    """

    def __init__(self, total: int, desc: str, every_s: float = 60.0) -> None:
        self.total = int(total)
        self.desc = desc
        self.every_s = float(every_s)
        self.done = 0
        self._start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            share = f" ({self.done / self.total:.0%})" if self.total else ""
            log.info("%s: %s of %s events%s, %.0f ev/s", self.desc, f"{self.done:,}",
                     f"{self.total:,}", share, self.done / (now - self._start))

    def close(self) -> None:
        pass


def progress(total: int, desc: str, bars: bool) -> Any:
    """A tqdm bar over ``total`` events when ``bars``, else a :class:`LogProgress`; both have
    ``update(n)`` and ``close()``."""
    if not bars:
        return LogProgress(total, desc)
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="ev", unit_scale=True, leave=False,
                dynamic_ncols=True)
