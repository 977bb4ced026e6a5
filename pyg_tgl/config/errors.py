"""The error every configuration check raises (a leaf module: the schema, the training code and
the command line all import it, and it imports nothing of pyg_tgl's)."""


class ConfigError(ValueError):
    """A bad option: the message is one line naming the option and what is allowed."""
