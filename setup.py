"""Builds pyg_tgl's C++ core (``pyg_tgl._core``); metadata lives in setup.cfg.

Flags: ``-O3 -fopenmp`` only (no ``-march=native``: wheels must run on other CPUs). Extra flags,
e.g. AddressSanitizer, come from the ``CXXFLAGS`` (C++ sources; older setuptools read ``CFLAGS``)
and ``LDFLAGS`` environment variables (see docs/development.md).
"""
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import CompileError, ExecError, LinkError, PlatformError

ROOT = Path(__file__).resolve().parent

_OMP_PROBE = r"""
#include <omp.h>
int main() {
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _openmp_flags(compiler_type: str):
    if compiler_type == "msvc":
        return ["/O2", "/openmp"], []
    return ["-O3", "-fopenmp"], ["-fopenmp"]


class BuildExt(build_ext):
    """``build_ext`` that first checks that a C++ compiler with OpenMP works."""

    def build_extensions(self):
        cflags, ldflags = _openmp_flags(self.compiler.compiler_type)
        self._check_openmp(cflags, ldflags)
        for ext in self.extensions:
            ext.extra_compile_args += cflags
            ext.extra_link_args += ldflags
        super().build_extensions()

    def _check_openmp(self, cflags, ldflags):
        with tempfile.TemporaryDirectory() as tmp:
            probe = os.path.join(tmp, "omp_probe.cpp")
            with open(probe, "w") as f:
                f.write(_OMP_PROBE)
            try:
                objects = self.compiler.compile([probe], output_dir=tmp, extra_postargs=cflags)
                # link_executable ignores LDFLAGS, which sanitizer builds need (-fsanitize=...).
                self.compiler.link_executable(
                    objects, "omp_probe", output_dir=tmp,
                    extra_postargs=ldflags + shlex.split(os.environ.get("LDFLAGS", "")))
            except (CompileError, LinkError, ExecError, OSError) as exc:
                raise PlatformError(
                    "pyg_tgl: building the C++ extension needs a C++17 compiler with OpenMP "
                    "(Debian/Ubuntu: apt-get install g++ libgomp1; Fedora: dnf install gcc-c++ "
                    f"libgomp); the OpenMP test program failed to build: {exc}") from None


class BuildPy(build_py):
    """``build_py`` that ships the top-level ``conf/`` as ``pyg_tgl/conf`` in wheels.

    Editable installs skip the copy: the code falls back to ``../conf`` next to the package.
    """

    def run(self):
        super().run()
        conf = ROOT / "conf"
        if conf.is_dir() and not getattr(self, "editable_mode", False):
            shutil.copytree(conf, Path(self.build_lib) / "pyg_tgl" / "conf", dirs_exist_ok=True)


class SDist(sdist):
    """``sdist`` that also ships ``conf/`` (the wheel build copies it into the package)."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        conf = ROOT / "conf"
        if conf.is_dir():
            shutil.copytree(conf, Path(base_dir) / "conf", dirs_exist_ok=True)


ext_modules = [
    Pybind11Extension(
        "pyg_tgl._core",
        sources=["cpp/core.cpp"],
        depends=["cpp/common.hpp", "cpp/tcsr.hpp", "cpp/sampler.hpp"],
        include_dirs=["cpp"],
        cxx_std=17,
    )
]

setup(ext_modules=ext_modules,
      cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "sdist": SDist})
