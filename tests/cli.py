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
