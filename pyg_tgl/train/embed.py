r"""Export node embeddings of a trained run at a given time, for downstream use.

.. code-block:: bash

    python -m pyg_tgl.embed outputs/tgn_collegemsg/2025-01-01_12-00-00 --time 1.5e7 \
        --out emb.pt [--nodes 0,5,7] [--checkpoint best|last|PATH]

The run's ``config_resolved.yaml`` rebuilds the data set and the model, the checkpoint's
parameters are loaded, memory is reset and every event with time ``< time`` is replayed
(evaluation mode, no gradient); then the nodes are embedded at ``time`` (neighbourhoods sampled
strictly before it). The output holds ``nodes`` ``[n]``, ``embeddings`` ``[n, d]`` (float32),
``time`` and the checkpoint path: a ``.pt`` dictionary, or ``.npy`` (embeddings only) / ``.npz``.
The same export runs at the end of a training run with ``export.time=...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from pyg_tgl.inference import compute_embeddings, load_run
from pyg_tgl.train.errors import ConfigError

__all__ = ["compute_embeddings", "write_embeddings", "export_embeddings", "main"]


def write_embeddings(path: Union[str, Path], nodes: Tensor, emb: Tensor, time: float,
                     checkpoint: str = "") -> Path:
    """Writes ``.pt`` (dictionary), ``.npy`` (embeddings) or ``.npz`` (both) atomically."""
    import os
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix == ".npy":
        np.save(tmp, emb.numpy())
    elif path.suffix == ".npz":
        np.savez(tmp, nodes=nodes.numpy(), embeddings=emb.numpy(), time=np.float64(time))
    else:
        torch.save({"nodes": nodes, "embeddings": emb, "time": float(time),
                    "checkpoint": checkpoint}, tmp)
    os.replace(tmp, path)
    return path


def export_embeddings(cfg: Any, ctx: Any, model: torch.nn.Module, time: float,
                      path: Union[str, Path], nodes: Optional[Sequence[int]] = None,
                      checkpoint: str = "") -> Path:
    """:func:`compute_embeddings` then :func:`write_embeddings`."""
    node_ids, emb = compute_embeddings(ctx, model, time, nodes)
    return write_embeddings(path, node_ids, emb, time, checkpoint)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m pyg_tgl.embed RUN_DIR --time T [--out PATH] [--nodes 1,2] [--checkpoint]``."""
    p = argparse.ArgumentParser(prog="python -m pyg_tgl.embed", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run directory of python -m pyg_tgl.run")
    p.add_argument("--time", type=float, required=True, help="query time")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (.pt, .npy or .npz); default RUN_DIR/embeddings.pt")
    p.add_argument("--nodes", type=str, default=None,
                   help="comma-separated node ids (default: all nodes)")
    p.add_argument("--checkpoint", type=str, default="best",
                   help="best, last, or a checkpoint path (default: best)")
    p.add_argument("--device", type=str, default=None, help="cpu, cuda, ... (default: the run's)")
    args = p.parse_args(argv)
    try:
        try:
            nodes = None if args.nodes is None else [int(x) for x in args.nodes.split(",") if x]
        except ValueError as e:
            raise ConfigError(f"--nodes={args.nodes!r}: expected comma-separated integers") from e
        run = load_run(args.run_dir, args.checkpoint, args.device)
        out = args.out or args.run_dir / "embeddings.pt"
        node_ids, emb = run.embed(args.time, nodes)
        write_embeddings(out, node_ids, emb, args.time, str(run.checkpoint))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
