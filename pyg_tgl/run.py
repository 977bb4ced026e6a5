r"""Hydra entry point: ``python -m pyg_tgl.run [overrides]``.

.. code-block:: bash

    python -m pyg_tgl.run                                   # TGN on CollegeMsg (offline)
    python -m pyg_tgl.run model=tgat data=wikipedia train.epoch=5
    python -m pyg_tgl.run schedule=random_chunk train.batch_size=4000
    python -m pyg_tgl.run --cfg job                         # the composed configuration
    python -m pyg_tgl.run -m model=tgn,tgat seed=0,1,2      # sweep + summary.csv / summary.md
    python -m pyg_tgl.run hydra.run.dir=outputs/x resume=true   # continue an interrupted run

Every run writes into Hydra's run directory: ``.hydra/`` (composed config and overrides),
``config_resolved.yaml``, ``metrics.json``, ``checkpoints/{best,last}.pt``,
``training_curve.png`` and ``train.log``. See ``docs/training.md``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

_PKG = Path(__file__).resolve().parent


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


def _quiet_console() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def task(cfg: Any) -> Optional[Dict[str, Any]]:
    """The Hydra task: runs one configured experiment in the current run directory."""
    from hydra.core.hydra_config import HydraConfig

    from pyg_tgl.train.experiment import ConfigError, run_experiment
    if cfg.get("quiet", False):
        _quiet_console()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run_experiment(cfg, out_dir, progress=not cfg.get("quiet", False))
    except ConfigError as e:
        # One line on the terminal; the run's log file records it too.
        record = logging.LogRecord("pyg_tgl", logging.ERROR, __file__, 0, "%s", (e,), None)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


GROUPS = ("model", "data", "task", "schedule", "train", "eval", "hardware", "preset")


def check_group_choices(argv: List[str], conf: str) -> Optional[str]:
    """Returns a one-line error for a command-line group choice (``model=foo``, also inside a
    sweep list ``model=tgn,foo``) that has no ``conf/<group>/<choice>.yaml``, else ``None``.
    Sweep functions (``choice(...)``, ``glob(...)``) are left to Hydra."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS or "(" in value:
            continue
        allowed = sorted(p.stem for p in (Path(conf) / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice and choice != "null" and choice not in allowed:
                return f"{key}={choice!r} is unknown; allowed values: {allowed}"
    return None


def main() -> None:
    """Console entry point (``python -m pyg_tgl.run``)."""
    import hydra
    conf = config_dir()
    error = check_group_choices(sys.argv[1:], conf)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    hydra.main(version_base="1.3", config_path=conf, config_name="config")(task)()


if __name__ == "__main__":
    main()
