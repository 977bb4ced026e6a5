"""The command line's override checks, in :mod:`pyg_tgl.config.overrides` (they read the
schema); importable from here as before."""
from pyg_tgl.config.overrides import GROUPS, check_group_choices, check_overrides  # noqa: F401

__all__ = ["GROUPS", "check_group_choices", "check_overrides"]
