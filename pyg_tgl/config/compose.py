r"""What ``python -m pyg_tgl.run OVERRIDES`` trains, from Python: the same checks of the
command line, the same composition (the default preset, a TGL file in place of the model), read
through the schema.

.. code-block:: python

    from pyg_tgl.config import compose
    cfg = compose(["model=tgat", "train.epoch=1"])     # typed, checked, every option present
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from pyg_tgl.config.errors import ConfigError


def tgl_file_config(cfg: Any, overrides: Sequence[str], preset: Optional[str],
                    conf: str) -> Any:
    """``cfg`` with the model of its ``tgl_config`` file; the preset's options and the
    command line's still win over the file."""
    from omegaconf import OmegaConf

    from pyg_tgl.config.tgl import apply_tgl_config, command_line_keep
    preset_options = None
    if preset:
        preset_options = OmegaConf.to_container(
            OmegaConf.load(Path(conf) / "preset" / f"{preset}.yaml"))
        preset_options.pop("defaults", None)
    return apply_tgl_config(cfg, cfg.tgl_config, command_line_keep(overrides, preset_options))


def compose(overrides: Sequence[str] = (), config_dir: Optional[str] = None) -> Any:
    r"""The configuration of ``python -m pyg_tgl.run *overrides``.

    Args:
        overrides (sequence of str): Hydra overrides (``model=tgat``, ``train.lr=0.001``).
        config_dir (str, optional): the configuration folder; default pyg_tgl's ``conf/``.

    Returns:
        DictConfig: typed, every option present (:func:`~pyg_tgl.config.check.check_config`).

    Raises:
        ConfigError: an unknown group choice or option, a bad value, a failed composition.
    """
    from omegaconf import OmegaConf, open_dict

    from pyg_tgl.config.check import check_config
    from pyg_tgl.config.overrides import check_group_choices, check_overrides, compose_groups
    from pyg_tgl.config.paths import config_dir as default_dir
    from pyg_tgl.config.recipe import with_default_preset
    conf = config_dir or default_dir()
    argv = with_default_preset(overrides)
    error = check_group_choices(argv, conf)
    if error is None:
        argv, error = check_overrides(argv, conf)
    if error is not None:
        raise ConfigError(error)
    cfg = compose_groups(conf, "config", argv, return_hydra_config=True)
    preset = cfg.hydra.runtime.choices.get("preset")
    with open_dict(cfg):
        del cfg["hydra"]
    if cfg.get("tgl_config"):
        cfg = tgl_file_config(cfg, argv, preset, conf)
    return check_config(OmegaConf.to_container(cfg, resolve=True))
