"""Runs ``python -m pyg_tgl.run`` with one injected fault, for the failure-path tests.

    python tests/faults.py FAULT N [run overrides ...]

FAULT, at the N-th occurrence (counted from 1 in this process):

* ``kill-train``: SIGKILL inside the N-th training batch (its loss is computed);
* ``sigint-train``: SIGINT (Ctrl-C) inside the N-th training batch;
* ``kill-eval``: SIGKILL inside the N-th evaluation batch (validation, replay or test);
* ``kill-save``: SIGKILL in the middle of writing the N-th checkpoint (after part of it reached
  the temporary file);
* ``full-save``: the N-th checkpoint write fails with ENOSPC (disk full) after part of it was
  written.

Test code only: the faults are installed by patching from outside, the product has no hooks.
"""
from __future__ import annotations

import errno
import os
import signal
import sys


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install(fault: str, nth: int) -> None:
    import torch

    from pyg_tgl.train import checkpoint, loop

    if fault in ("kill-train", "kill-eval", "sigint-train"):
        real_loss = loop.link_loss
        seen = {"n": 0}
        training = fault != "kill-eval"

        def loss(*args, **kwargs):
            if torch.is_grad_enabled() == training:
                seen["n"] += 1
                if seen["n"] == nth:
                    if fault == "sigint-train":
                        os.kill(os.getpid(), signal.SIGINT)
                    else:
                        _kill()
            return real_loss(*args, **kwargs)

        loop.link_loss = loss
        return
    if fault in ("kill-save", "full-save"):
        real_save = torch.save
        saves = {"n": 0}

        class FailingFile:
            """The checkpoint's temporary file: its third write kills the process or fails."""

            def __init__(self, f):
                self.f, self.writes = f, 0

            def write(self, data):
                self.writes += 1
                if self.writes == 3:
                    if fault == "kill-save":
                        self.f.flush()
                        _kill()
                    raise OSError(errno.ENOSPC, "No space left on device")
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

        def save(obj, f, *args, **kwargs):
            saves["n"] += 1
            return real_save(obj, FailingFile(f) if saves["n"] == nth else f, *args, **kwargs)

        checkpoint.torch.save = save
        return
    raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    fault, nth = sys.argv[1], int(sys.argv[2])
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    _install(fault, nth)
    from pyg_tgl.run import main
    main()
