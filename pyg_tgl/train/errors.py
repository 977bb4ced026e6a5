"""The error every configuration check raises; defined in :mod:`pyg_tgl.config.errors` and
importable from here, as before."""
from pyg_tgl.config.errors import ConfigError

__all__ = ["ConfigError"]
