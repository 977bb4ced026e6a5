r"""TGL's own model files (``config/TGN.yml`` of amazon-research/tgl) as pyg_tgl configurations:
the conversion lives in :mod:`pyg_tgl.config.tgl` (it maps TGL's keys onto the schema); this
module keeps its names importable and is the command that prints a conversion:

.. code-block:: bash

    python -m pyg_tgl.train.tgl_config path/to/TGN.yml    # a conf/model/<name>.yaml file
"""
from __future__ import annotations

import sys
from typing import List, Optional

from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.tgl import (MODEL_SECTIONS, TRAIN_KEYS, apply_tgl_config,  # noqa: F401
                                command_line_keep, read_tgl_config, section_keys, to_yaml)


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m pyg_tgl.train.tgl_config FILE.yml``: prints the conversion."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m pyg_tgl.train.tgl_config TGL_MODEL.yml", file=sys.stderr)
        sys.exit(2)
    try:
        print(to_yaml(argv[0]), end="")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
