"""The C++ T-CSR build and sampler under the fuzz driver ``tests/sampler_fuzz.py``.

Thousands of random T-CSRs, options and root arrays, valid and invalid, each run in a subprocess
(a crash fails the test instead of killing pytest): once with the installed extension, and once
with an AddressSanitizer + UndefinedBehaviorSanitizer build of it compiled into a temporary folder
(the installed ``pyg_tgl/_core*.so`` is never replaced). Valid cases must equal
``tests/reference.py``; invalid ones must raise a one-line ``ValueError``; the sanitizers must
report nothing. See docs/development.md (AddressSanitizer) for the same build by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Dict, List, Optional

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FUZZ = TESTS / "sampler_fuzz.py"

#: Every kind of case the driver draws; each must occur, or the fuzz checked less than it claims.
KINDS = ("valid", "valid/limit", "invalid/before", "invalid/after-torch", "invalid/after-numpy",
         "invalid/roots", "invalid/options")

PLAIN_CASES = 2000
SANITIZED_CASES = 4000


def _run_fuzz(cases: int, seed: int, cwd: Path, core: Optional[Path] = None,
              env_extra: Optional[Dict[str, str]] = None) -> dict:
    # Passive OpenMP waits: the cases are tiny, and spinning threads on shared cores would make
    # every parallel region cost milliseconds.
    env = {**os.environ, "OMP_WAIT_POLICY": "passive", **(env_extra or {})}
    cmd = [sys.executable, str(FUZZ), "--cases", str(cases), "--seed", str(seed)]
    if core is not None:
        cmd += ["--core", str(core)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FUZZ-SUMMARY ")]
    tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-4000:]).strip()
    assert lines, (f"the fuzz driver died (exit status {proc.returncode}) before its "
                   f"summary:\n{tail}")
    summary = json.loads(lines[-1][len("FUZZ-SUMMARY "):])
    failures = "\n".join(f"seed {f['seed']}: {f['error'][:1500]}" for f in summary["failures"])
    assert summary["num_failures"] == 0, f"{summary['num_failures']} failing cases:\n{failures}"
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{tail}"
    missing = [k for k in KINDS if not summary["counts"].get(k)]
    assert not missing, f"no case of kind(s) {missing} was drawn: {summary['counts']}"
    return summary


def test_fuzz_installed_extension(tmp_path):
    summary = _run_fuzz(PLAIN_CASES, seed=0, cwd=tmp_path)
    assert sum(summary["counts"].values()) == PLAIN_CASES


# ------------------------------------------------------------------------------------------------
# Sanitizer build
# ------------------------------------------------------------------------------------------------

def _runtime(cxx: str, name: str) -> Optional[str]:
    """Absolute path of a compiler runtime library, or None (GCC prints the bare name then)."""
    try:
        out = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if os.path.isabs(out) and os.path.exists(out) else None


@pytest.fixture(scope="module")
def sanitized_core(tmp_path_factory):
    """``(path of the instrumented _core, LD_PRELOAD libraries)``; skips without a toolchain."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or c++) on PATH to build the sanitizer copy")
    libasan = _runtime(cxx, "libasan.so")
    libstdcxx = _runtime(cxx, "libstdc++.so")
    if libasan is None or libstdcxx is None:
        pytest.skip(f"{cxx} has no AddressSanitizer runtime (libasan.so) or libstdc++.so to "
                    f"preload (Debian/Ubuntu: apt-get install g++ libasan8)")
    try:
        import pybind11
    except ImportError:
        pytest.skip("pybind11 is not installed (pip install -e '.[test]' installs it)")
    libubsan = _runtime(cxx, "libubsan.so")
    sanitize = "address,undefined" if libubsan else "address"
    out = tmp_path_factory.mktemp("sanitized")
    target = out / f"_core{sysconfig.get_config_var('EXT_SUFFIX')}"
    # -O1 -g1: stack traces with lines, and a short build; _GLIBCXX_ASSERTIONS adds bounds
    # checks to std::vector; UB (signed overflow, bad shifts, ...) aborts instead of recovering.
    cmd = [cxx, "-std=c++17", "-O1", "-g1", f"-fsanitize={sanitize}", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=all", "-D_GLIBCXX_ASSERTIONS", "-fopenmp", "-shared", "-fPIC",
           "-I", str(ROOT / "cpp"), "-I", pybind11.get_include(),
           "-I", sysconfig.get_paths()["include"], str(ROOT / "cpp" / "core.cpp"),
           "-o", str(target)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"sanitizer build failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    assert b"__asan_report" in target.read_bytes(), "the build is not instrumented"
    preload: List[str] = [libasan] + ([libubsan] if libubsan else []) + [libstdcxx]
    return target, preload


def test_fuzz_under_address_sanitizer(sanitized_core, tmp_path):
    core, preload = sanitized_core
    report = tmp_path / "report"
    # libasan first (Python is not instrumented), libstdc++ so that ASan finds __cxa_throw when
    # the extension raises; leaks are CPython's by design; reports go to files because a
    # sanitizer abort loses what it printed to the captured stderr.
    env = {"LD_PRELOAD": " ".join(preload),
           "ASAN_OPTIONS": f"detect_leaks=0:log_path={report}",
           "UBSAN_OPTIONS": f"print_stacktrace=1:log_path={report}"}
    summary = _run_fuzz(SANITIZED_CASES, seed=1, cwd=tmp_path, core=core, env_extra=env)
    assert summary["core"] == str(core), f"the fuzz did not load the sanitizer build: {summary}"
    reports = sorted(tmp_path.glob("report*"))
    assert not reports, "sanitizer report(s):\n" + "\n".join(
        p.read_text(errors="replace")[:4000] for p in reports)
