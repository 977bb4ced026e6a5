r"""pyg_tgl's configuration schema: every option of ``python -m pyg_tgl.run`` defined once, as a
typed dataclass field with its default, allowed values and a one-line doc.

* :mod:`~pyg_tgl.config.schema`: the top level (:class:`RunConfig`) and the sections chosen by
  name (model, data, task, schedule), registered as Hydra structured configs on import;
* :mod:`~pyg_tgl.config.train`, :mod:`~pyg_tgl.config.hardware`, :mod:`~pyg_tgl.config.model`,
  :mod:`~pyg_tgl.config.data`: the sections;
* :mod:`~pyg_tgl.config.check`: :func:`check_config` reads any configuration through the schema
  (defaults for what it lacks, one-line errors for what is wrong), :mod:`~pyg_tgl.config.rules`
  the checks across options;
* :func:`compose`: what ``python -m pyg_tgl.run OVERRIDES`` trains, from Python;
* :mod:`~pyg_tgl.config.docs`: ``python -m pyg_tgl.config.docs`` writes ``docs/options.md``.

The YAML files of ``conf/`` only set values; a group file picks its section's class in its
defaults list (``- optional /schema/data@_here_: csv``). Import this package (or call
:func:`pyg_tgl.run.config_dir`) before composing ``conf/`` with Hydra's own API, so that the
schema is registered.
"""
from pyg_tgl.config.check import check_config, with_defaults
from pyg_tgl.config.compose import compose
from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.schema import KINDS, RunConfig, register

register()

__all__ = ["ConfigError", "RunConfig", "KINDS", "check_config", "with_defaults", "compose",
           "register"]
