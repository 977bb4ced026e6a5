r"""The run of ``python -m pyg_tgl.run`` with no model chosen: the most accurate documented
configuration (``preset=best``: TGN with pyg_tgl's pair and node history features, batches of
200), while any explicit ``model=`` (or ``tgl_config=``) trains that model exactly as TGL
configures it.

Hydra's defaults list cannot make one group's default depend on whether another group was
chosen on the command line, so :func:`with_default_preset` adds ``preset=best`` to a command
line that chooses no model, no TGL file and no preset, before Hydra reads it (the command line
and :func:`pyg_tgl.config.compose` both do), and :func:`best_note` is the line the run logs.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

#: The preset a command line without model=, tgl_config= or preset= gets.
DEFAULT_PRESET = "best"
#: Command-line choices that opt out of it.
CHOOSERS = ("model", "tgl_config", "preset")


def with_default_preset(argv: Sequence[str]) -> List[str]:
    """``argv`` with ``preset=best`` added when it chooses no model, TGL file or preset.

    Args:
        argv (sequence of str): the command line after the program name.
    """
    from pyg_tgl.config.overrides import parse
    argv = list(argv)
    parsed = parse(argv)
    if parsed is None:
        return argv  # Hydra reports the problem in its words
    flags, overrides = parsed
    if flags.shell_completion or any(o.key_or_group in CHOOSERS for o in overrides):
        return argv
    at = argv.index(overrides[0].input_line) if overrides else len(argv)
    # Beside the other overrides: Hydra's parser takes them in one run (not after --cfg job).
    return argv[:at] + [f"preset={DEFAULT_PRESET}"] + argv[at:]


def best_note(preset: Optional[str], model: str, overrides: Sequence[str]) -> Optional[str]:
    """The log line of a ``preset=best`` run: what it trains and the override for TGL's model
    (``None`` for any other preset)."""
    if preset != DEFAULT_PRESET:
        return None
    chosen = [o for o in overrides if o.lstrip("+~").startswith(("model=", "tgl_config="))]
    plain = "model=tgn" if not chosen else chosen[0].lstrip("+")
    return (f"preset=best: {model} with pyg_tgl's pair and node history features "
            f"(features=pair_history) at batch 200, the most accurate documented configuration "
            f"(TGN on CollegeMsg: test AP 0.96 against 0.84 for TGL's TGN, docs/accuracy.md, "
            f"'The default run'); "
            f"`{plain}` (preset=quick) trains {model} exactly as TGL configures it")


__all__ = ["DEFAULT_PRESET", "with_default_preset", "best_note"]
