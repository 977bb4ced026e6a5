"""Where pyg_tgl's configuration folder is."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parents[1]


def config_dir() -> str:
    """The configuration folder: the source checkout's ``conf/`` when running from one (an
    editable install, so edits take effect), else the copy installed as ``pyg_tgl/conf``."""
    repo = _PKG.parent
    if (repo / "conf" / "config.yaml").is_file() and (repo / "setup.cfg").is_file():
        return str(repo / "conf")
    installed = _PKG / "conf"
    if (installed / "config.yaml").is_file():
        return str(installed)
    raise FileNotFoundError(
        f"pyg_tgl's configuration folder is missing: neither {repo / 'conf'} nor {installed} "
        f"holds config.yaml; reinstall the package")
