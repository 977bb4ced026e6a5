"""Running this checkout's command-line entry points in a subprocess, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence

REPO = Path(__file__).resolve().parents[1]


def cli_env(data_home: Path) -> Dict[str, str]:
    """The environment of a subprocess: this checkout importable without installation, processed
    data under ``data_home`` (not ~), one OpenMP thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["PYG_TGL_DATA"] = str(data_home)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_cli(args: Sequence[str], cwd: Path, data_home: Path, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``python *args`` in ``cwd``; with ``check``, a non-zero exit fails with its output."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=cli_env(data_home),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{list(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def private_tmpfs_or_skip(mount_point: Path, size: str, command: Sequence[str]) -> str:
    """A shell line that mounts a ``size`` tmpfs on ``mount_point`` and runs ``command``, to be
    run under ``unshare -rm`` (a private user and mount namespace: no privileges needed); skips
    the test where that is unavailable. Returns the ``sh -c`` argument."""
    import shlex
    import shutil

    import pytest
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare -rm (Linux user namespaces) to mount a small tmpfs")
    return (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mount_point))} && "
            + " ".join(map(shlex.quote, command)))


def run_unshared(shell_line: str, env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``unshare -rm sh -c shell_line`` (see :func:`private_tmpfs_or_skip`)."""
    return subprocess.run(["unshare", "-rm", "sh", "-c", shell_line], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cwd)


def write_unix_time_events(path: Path, num_events: int = 20_000, seed: int = 0) -> Path:
    """A CSV ``src,dst,t`` of random events among 500 nodes at Unix times, one a second."""
    import numpy as np
    rng = np.random.default_rng(seed)
    rows = zip(rng.integers(0, 500, num_events), rng.integers(0, 500, num_events),
               1_600_000_000 + np.arange(num_events))
    path.write_text("src,dst,t\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path
