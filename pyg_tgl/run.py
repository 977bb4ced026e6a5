r"""Hydra entry point: ``python -m pyg_tgl.run [overrides]``.

.. code-block:: bash

    python -m pyg_tgl.run                                   # TGN on CollegeMsg (offline)
    python -m pyg_tgl.run model=tgat data=wikipedia train.epoch=5
    python -m pyg_tgl.run schedule=random_chunk train.batch_size=4000
    python -m pyg_tgl.run tgl_config=path/to/TGN.yml        # TGL's own model file
    python -m pyg_tgl.run --cfg job                         # the composed configuration
    python -m pyg_tgl.run -m model=tgn,tgat seed=0,1,2      # sweep + summary.csv / summary.md
    python -m pyg_tgl.run hydra.run.dir=outputs/x resume=true   # continue an interrupted run
    python -m pyg_tgl.run hardware=ddp                      # data parallel, local processes
    torchrun --nproc_per_node=4 -m pyg_tgl.run hardware=ddp # the same under torchrun

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


def local_processes(cfg: Any) -> int:
    """Processes this command launches itself: ``hardware.distributed.nproc_per_node`` outside
    ``torchrun`` (``auto``: one per GPU, or 2 on a CPU-only machine), 1 under ``torchrun``."""
    from pyg_tgl.train.distributed import env_rank
    if env_rank() is not None:
        return 1
    from omegaconf import OmegaConf
    n = OmegaConf.select(cfg, "hardware.distributed.nproc_per_node", default=1)
    if n == "auto":
        import torch
        device = str(OmegaConf.select(cfg, "hardware.device", default="auto"))
        use_cuda = torch.cuda.is_available() and device != "cpu"
        return torch.cuda.device_count() if use_cuda else 2
    return int(n or 1)


def _fail(message: str, code: int) -> None:
    # One line on the terminal; the run's log file records it too.
    record = logging.LogRecord("pyg_tgl", logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _rank_console(rank: int, quiet: bool) -> logging.Logger:
    """The root logger with a console handler on stderr, prefixed with the rank: rank 0 at
    INFO (WARNING when quiet), the others at WARNING, so that their INFO lines, the same as rank
    0's, are not repeated."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet or rank else logging.INFO)
    console.setFormatter(logging.Formatter(f"[rank {rank}] [%(asctime)s][%(levelname)s] "
                                           f"%(message)s"))
    root.addHandler(console)
    return root


def _spawned_rank(cfg_yaml: str, out_dir: str, progress: bool) -> None:
    """Body of a process started by :func:`local_processes` > 1: logging as the Hydra process
    has it (rank 0: console and ``train.log``; other ranks: warnings, prefixed), then the run."""
    from omegaconf import OmegaConf

    from pyg_tgl.train.distributed import env_rank
    from pyg_tgl.train.experiment import ConfigError, run_experiment
    rank = env_rank()[0]
    cfg = OmegaConf.create(cfg_yaml)
    quiet = cfg.get("quiet", False) is True
    root = _rank_console(rank, quiet)
    if rank == 0:
        logfile = logging.FileHandler(Path(out_dir) / "train.log")
        logfile.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - "
                                               "%(message)s"))
        root.addHandler(logfile)
    try:
        run_experiment(cfg, Path(out_dir), progress=progress and rank == 0)
    except ConfigError as e:
        if rank == 0:
            _fail(str(e), 2)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)  # the launching process says how to resume


def _with_tgl_config(cfg: Any) -> Any:
    """``cfg`` with the model of its ``tgl_config`` file, under the preset and the command line."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from pyg_tgl.train.tgl_config import apply_tgl_config, command_line_keep
    hydra_cfg = HydraConfig.get()
    preset_name = hydra_cfg.runtime.choices.get("preset")
    preset = None
    if preset_name:
        preset = OmegaConf.to_container(
            OmegaConf.load(Path(config_dir()) / "preset" / f"{preset_name}.yaml"))
    keep = command_line_keep(hydra_cfg.overrides.task, preset)
    return apply_tgl_config(cfg, cfg.tgl_config, keep)


def task(cfg: Any) -> Optional[Dict[str, Any]]:
    """The Hydra task: runs one configured experiment in the current run directory (data
    parallel when started by ``torchrun`` or when ``hardware.distributed.nproc_per_node > 1``)."""
    import json

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from pyg_tgl.data.storage import CacheFullError
    from pyg_tgl.train.checkpoint import CheckpointWriteError
    from pyg_tgl.train.distributed import DistributedError, env_rank
    from pyg_tgl.train.launch import launch_local
    from pyg_tgl.train.experiment import ConfigError, run_experiment
    from pyg_tgl.train.validation import normalize_config, validate_config
    quiet = cfg.get("quiet", False) is True
    if quiet:
        _quiet_console()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    ranks = env_rank()
    if ranks is not None and ranks[0] > 0:  # torchrun: Hydra configured no logging here
        _rank_console(ranks[0], quiet)
    try:
        if cfg.get("tgl_config"):
            cfg = _with_tgl_config(cfg)
        cfg = normalize_config(cfg)
        validate_config(cfg)  # here, once, rather than in every rank
        progress = show_progress(cfg) and (ranks is None or ranks[0] == 0)
        nproc = local_processes(cfg)
        if nproc > 1:
            launch_local(_spawned_rank, nproc,
                         (OmegaConf.to_yaml(cfg, resolve=True), str(out_dir), progress))
            return json.loads((out_dir / "metrics.json").read_text())
        return run_experiment(cfg, out_dir, progress=progress)
    except ConfigError as e:
        _fail(str(e), 2)
    except (DistributedError, CheckpointWriteError, CacheFullError) as e:
        _fail(str(e), 1)
    except KeyboardInterrupt:
        _fail(_interrupted(out_dir, HydraConfig.get().overrides.task), 130)
    return None


def show_progress(cfg: Any) -> bool:
    """Progress bars: ``progress=true`` / ``false``, or, by default (``null``), only when
    standard error is a terminal, so a log file gets plain lines instead of bar frames; never
    with ``quiet=true``."""
    if cfg.get("quiet", False) is True:
        return False
    choice = cfg.get("progress", None)
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) if choice is None else \
        bool(choice)


def _interrupted(out_dir: Path, overrides: List[str]) -> str:
    """The one line printed for Ctrl-C: how to continue the run, or that nothing was saved."""
    import shlex
    if not (out_dir / "checkpoints" / "last.pt").is_file():
        return (f"interrupted before the run's first checkpoint: nothing to resume in {out_dir} "
                f"(train.checkpoint_every saves within an epoch)")
    keep = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.run.dir="))]
    command = " ".join(["python -m pyg_tgl.run", *map(shlex.quote, keep),
                        shlex.quote(f"hydra.run.dir={out_dir}"), "resume=true"])
    return f"interrupted; continue from the last checkpoint with: {command}"


def _tgl_run_dir(argv: List[str]) -> List[str]:
    """With ``tgl_config=DIR/TGN.yml`` (one file) and no run directory given, the run directory
    is named after the file (``outputs/tgn_<data>/...``), not after the unused model group."""
    at = [i for i, a in enumerate(argv) if a.lstrip("+").startswith("tgl_config=")]
    if len(at) != 1 or "," in argv[at[0]] or any(
            a.lstrip("+~").startswith("hydra.run.dir=") for a in argv):
        return argv
    name = Path(argv[at[0]].partition("=")[2]).stem.lower()
    run_dir = (f"hydra.run.dir=outputs/{name}_${{hydra:runtime.choices.data}}/"
               f"${{now:%Y-%m-%d_%H-%M-%S}}")
    # Beside its override, not at the end: Hydra's parser takes overrides in one run, so one
    # after an option such as ``--cfg job`` would be refused.
    return argv[:at[0] + 1] + [run_dir] + argv[at[0] + 1:]


def _secondary_rank_overrides(argv: List[str]) -> List[str]:
    """Command line of a ``torchrun`` rank > 0: rank 0 alone writes the run directory, so the
    others get no directory, no ``.hydra/`` and no log of Hydra's (:func:`task` gives them a
    console for warnings)."""
    keep = [a for a in argv if not a.lstrip("+~").startswith(("hydra.run.dir=",
                                                              "hydra.output_subdir=",
                                                              "hydra/job_logging=",
                                                              "hydra/hydra_logging="))]
    return keep + ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none",
                   "hydra/hydra_logging=none"]


def main() -> None:
    """Console entry point (``pyg-tgl``, or ``python -m pyg_tgl.run``)."""
    import hydra
    from pyg_tgl.overrides import check_group_choices, check_overrides
    conf = config_dir()
    error = check_group_choices(sys.argv[1:], conf)
    if error is None:
        sys.argv[1:], error = check_overrides(sys.argv[1:], conf)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from pyg_tgl.train.distributed import env_rank
    from pyg_tgl.train.launch import exit_without_teardown
    sys.argv[1:] = _tgl_run_dir(sys.argv[1:])
    ranks = env_rank()
    if ranks is not None and ranks[0] > 0:
        sys.argv[1:] = _secondary_rank_overrides(sys.argv[1:])
    hydra.main(version_base="1.3", config_path=conf, config_name="config")(task)()
    if ranks is not None and ranks[1] > 1:  # a torchrun rank that finished its work
        exit_without_teardown()


if __name__ == "__main__":
    main()
