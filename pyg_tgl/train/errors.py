"""The error every configuration check raises (its own module, so that the modules which check
options need not import :mod:`pyg_tgl.train.experiment`)."""


class ConfigError(ValueError):
    """A bad option: the message is one line naming the option and what is allowed."""
