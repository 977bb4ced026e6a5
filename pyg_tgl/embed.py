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


def compute_embeddings(ctx: Any, model: torch.nn.Module, time: float,
                       nodes: Optional[Union[Sequence[int], Tensor]] = None,
                       batch_size: int = 4000) -> tuple:
    """Embeddings of ``nodes`` (all by default) at ``time`` after replaying earlier events.

    Args:
        ctx: the :class:`~pyg_tgl.train.experiment.Context` of the run.
        model (torch.nn.Module): the trained model (its memory is reset here).
        time (float): query time.
        nodes (sequence of int, optional): node ids.
        batch_size (int): nodes per forward pass.

    Returns:
        tuple: ``(nodes [n] int64, embeddings [n, d] float32)``.
    """
    from pyg_tgl.train.experiment import ConfigError
    from pyg_tgl.train.node import TemporalEmbedder

    num_nodes = int(ctx.ds.num_nodes)
    if nodes is None:
        node_ids = torch.arange(num_nodes)
    else:
        node_ids = torch.as_tensor(list(nodes) if not isinstance(nodes, Tensor) else nodes,
                                   dtype=torch.long).view(-1)
        bad = (node_ids < 0) | (node_ids >= num_nodes)
        if bool(bad.any()):
            raise ConfigError(f"export.nodes: node id {int(node_ids[bad][0])} is outside "
                              f"[0, {num_nodes})")
    num_events = ctx.split["test"].stop
    loader = ctx.loader(slice(0, num_events), 1, "random", 0)
    embedder = TemporalEmbedder(model, loader, num_events, int(ctx.cfg.train.batch_size),
                                ctx.device)
    embedder.advance_to(float(time))
    times = torch.full((node_ids.numel(),), float(time), dtype=torch.float64)
    out = [embedder.embed(n, t).float().cpu()
           for n, t in zip(torch.split(node_ids, batch_size), torch.split(times, batch_size))]
    return node_ids, torch.cat(out)


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
    from omegaconf import OmegaConf

    from pyg_tgl.train.checkpoint import load_checkpoint
    from pyg_tgl.train.experiment import (ConfigError, Context, build_model, load_data,
                                          load_model_state, resolve_device)

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
        cfg_path = args.run_dir / "config_resolved.yaml"
        if not cfg_path.is_file():
            raise ConfigError(f"run_dir: {cfg_path} does not exist; give a directory written by "
                              f"python -m pyg_tgl.run")
        cfg = OmegaConf.load(cfg_path)
        ckpt = args.checkpoint
        ckpt_path = (args.run_dir / "checkpoints" / f"{ckpt}.pt") if ckpt in ("best", "last") \
            else Path(ckpt)
        try:
            nodes = None if args.nodes is None else [int(x) for x in args.nodes.split(",") if x]
        except ValueError as e:
            raise ConfigError(f"--nodes={args.nodes!r}: expected comma-separated integers") from e
        device = resolve_device(args.device or cfg.hardware.device)
        try:
            state = load_checkpoint(ckpt_path, map_location=device)
        except FileNotFoundError as e:
            raise ConfigError(f"--checkpoint: {e}") from e
        ds = load_data(cfg)
        ctx = Context(cfg, ds, device)
        model = build_model(cfg, ds, device)
        load_model_state(model, state["model"])
        out = args.out or args.run_dir / "embeddings.pt"
        export_embeddings(cfg, ctx, model, args.time, out, nodes, str(ckpt_path))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
