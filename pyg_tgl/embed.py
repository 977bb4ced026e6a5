"""``python -m pyg_tgl.embed``: the command line of :mod:`pyg_tgl.train.embed` (node embeddings
of a finished run at a given time)."""
import sys

from pyg_tgl.train.embed import main

if __name__ == "__main__":
    sys.exit(main())
