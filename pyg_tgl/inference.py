r"""A finished run as a model for inference, in Python.

.. code-block:: python

    from pyg_tgl import load_run

    run = load_run("outputs/tgn_collegemsg/2026-01-01_12-00-00")   # best.pt, evaluation mode
    nodes, emb = run.embed(time=1.5e7, nodes=[0, 5, 7])    # after replaying events before 1.5e7
    p = run.score(src=[0, 5], dst=[7, 9], time=1.5e7)      # link probabilities at that time
    test = run.test()                                      # the run's test metrics, re-scored

The run's ``config_resolved.yaml`` rebuilds the data set and the model, the checkpoint's
parameters (and memory, for ``eval.memory_carry``) are loaded. :meth:`TrainedRun.embed` and
:meth:`TrainedRun.score` reset memory and replay every event with time ``< time`` before
answering (so each call costs one pass over the history up to ``time``); :meth:`TrainedRun.test`
repeats the run's own test protocol. ``python -m pyg_tgl.embed`` is :func:`load_run` followed by
:meth:`TrainedRun.embed` and a file write.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from omegaconf import OmegaConf
from torch import Tensor

from pyg_tgl.config.check import with_defaults
from pyg_tgl.train.checkpoint import load_checkpoint
from pyg_tgl.train.errors import ConfigError

Nodes = Union[Sequence[int], Tensor]


def compute_embeddings(ctx: Any, model: torch.nn.Module, time: float,
                       nodes: Optional[Nodes] = None, batch_size: int = 4000
                       ) -> Tuple[Tensor, Tensor]:
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
    node_ids = _node_ids(ctx, nodes, "export.nodes") if nodes is not None else \
        torch.arange(int(ctx.ds.num_nodes))
    embedder = _replayed(ctx, model, float(time))
    times = torch.full((node_ids.numel(),), float(time), dtype=torch.float64)
    out = [embedder.embed(n, t).float().cpu()
           for n, t in zip(torch.split(node_ids, batch_size), torch.split(times, batch_size))]
    return node_ids, torch.cat(out)


def _node_ids(ctx: Any, nodes: Nodes, what: str) -> Tensor:
    num_nodes = int(ctx.ds.num_nodes)
    ids = torch.as_tensor(nodes if isinstance(nodes, Tensor) else list(nodes),
                          dtype=torch.long).view(-1)
    bad = (ids < 0) | (ids >= num_nodes)
    if bool(bad.any()):
        raise ConfigError(f"{what}: node id {int(ids[bad][0])} is outside [0, {num_nodes})")
    return ids


def _replayed(ctx: Any, model: torch.nn.Module, time: float) -> Any:
    """A :class:`~pyg_tgl.train.node.TemporalEmbedder` whose model absorbed every event of the
    run (capped by ``train.max_events``) with time ``< time``."""
    from pyg_tgl.train.node import TemporalEmbedder
    num_events = ctx.split["test"].stop
    loader = ctx.loader(slice(0, num_events), 1, "random", 0)
    embedder = TemporalEmbedder(model, loader, num_events, int(ctx.cfg.train.batch_size),
                                ctx.device)
    embedder.advance_to(time)
    return embedder


class TrainedRun:
    r"""A trained model with its data, rebuilt from a run directory (see :func:`load_run`).

    Attributes:
        run_dir (pathlib.Path): the run directory.
        config (omegaconf.DictConfig): the run's resolved configuration.
        dataset: the data set (:func:`~pyg_tgl.data.load_dataset`).
        context: the run's :class:`~pyg_tgl.train.experiment.Context` (split, loaders).
        model (torch.nn.Module): the :class:`~pyg_tgl.nn.TemporalGNN`, in evaluation mode.
        checkpoint (pathlib.Path): the checkpoint loaded; ``epoch`` its epoch.
        metrics (dict, optional): the run's ``metrics.json`` (``None`` when absent).
    """

    def __init__(self, run_dir: Path, config: Any, context: Any, model: torch.nn.Module,
                 checkpoint: Path, state: Dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.config = config
        self.context = context
        self.dataset = context.ds
        self.model = model
        self.checkpoint = checkpoint
        self.epoch = state.get("epoch")
        self._model_state = state["model"]
        metrics = run_dir / "metrics.json"
        self.metrics = json.loads(metrics.read_text()) if metrics.is_file() else None

    @property
    def device(self) -> torch.device:
        return self.context.device

    def embed(self, time: float, nodes: Optional[Nodes] = None, batch_size: int = 4000
              ) -> Tuple[Tensor, Tensor]:
        """Embeddings at ``time`` after replaying every earlier event.

        Args:
            time (float): query time (neighbourhoods are sampled strictly before it).
            nodes (sequence of int, optional): node ids; default all.
            batch_size (int): nodes per forward pass.

        Returns:
            tuple: ``(nodes [n] int64, embeddings [n, d] float32)`` on the CPU.
        """
        return compute_embeddings(self.context, self.model, time, nodes, batch_size)

    @torch.no_grad()
    def score(self, src: Nodes, dst: Nodes, time: Union[float, Sequence[float], Tensor],
              batch_size: Optional[int] = None) -> Tensor:
        """Probabilities of the links ``src[i] -> dst[i]`` at ``time`` (one time, or one per
        link in non-decreasing order), as the model scores a batch of events: the links are
        scored ``batch_size`` at a time; before each batch, memory absorbs every event of the
        data set with a time before the batch's earliest time; neighbourhoods are sampled
        before each link's time; the links of one batch do not see each other.

        Args:
            src, dst (sequence of int): the links' endpoints.
            time (float or sequence of float): query time(s).
            batch_size (int, optional): links per forward pass; default ``train.batch_size``
                (with it, scoring a run's own events in order reproduces its batches).

        Returns:
            torch.Tensor: ``[n]`` float32 probabilities on the CPU.
        """
        from pyg_tgl.data.batch import TemporalBatch
        src_ids = _node_ids(self.context, src, "score: src")
        dst_ids = _node_ids(self.context, dst, "score: dst")
        if src_ids.numel() != dst_ids.numel():
            raise ValueError(f"score: src has {src_ids.numel()} nodes, dst {dst_ids.numel()}")
        times = torch.as_tensor(time, dtype=torch.float64).view(-1)
        times = times.expand(src_ids.numel()).clone() if times.numel() == 1 else times
        if times.numel() != src_ids.numel():
            raise ValueError(f"score: {times.numel()} times for {src_ids.numel()} links")
        if bool((times[1:] < times[:-1]).any()):
            raise ValueError("score: the times must be in non-decreasing order")
        if not src_ids.numel():
            return torch.empty(0)
        embedder = _replayed(self.context, self.model, float(times[0]))
        sampler = embedder.loader.sampler
        size = int(batch_size or self.config.train.batch_size)
        out = []
        for s, d, t in zip(src_ids.split(size), dst_ids.split(size), times.split(size)):
            embedder.advance_to(float(t[0]))
            roots, root_ts = torch.cat([s, d]), torch.cat([t, t])
            blocks = sampler.sample(roots, root_ts) if sampler is not None else []
            batch = TemporalBatch(src=s, dst=d, t=t, eid=torch.full_like(s, -1),
                                  neg_dst=s.new_empty(0), root_nodes=roots, root_ts=root_ts,
                                  blocks=blocks).to(self.device)
            pos, _ = self.model.score(batch)
            out.append(torch.sigmoid(pos.float()).cpu())
        return torch.cat(out)

    def test(self) -> Dict[str, Any]:
        """Re-scores the test split with the run's protocol, negatives and batches; returns the
        metrics (equal to ``metrics.json``'s ``test`` on the same machine and thread count)."""
        from pyg_tgl.train.resume import load_model_state
        from pyg_tgl.train.loop import LinkTrainer
        from pyg_tgl.train.protocol import score_test
        cfg = self.config
        load_model_state(self.model, self._model_state)  # memory too, for eval.memory_carry
        trainer = LinkTrainer(self.model, None, None, None, device=self.device,
                              loss=cfg.train.loss, ties=cfg.eval.ties, progress=False,
                              precision=str(OmegaConf.select(cfg, "hardware.precision",
                                                             default="float32")),
                              host_plans=bool(OmegaConf.select(cfg, "hardware.host_plans",
                                                               default=False)))
        return score_test(cfg, self.context, trainer)


def load_run(run_dir: Union[str, Path], checkpoint: str = "best",
             device: Optional[str] = None,
             model_factory: Optional[Callable[..., torch.nn.Module]] = None) -> TrainedRun:
    """Loads a finished (or interrupted) run of ``python -m pyg_tgl.run`` for inference.

    Args:
        run_dir (str or pathlib.Path): the run directory (holds ``config_resolved.yaml``).
        checkpoint (str): ``"best"`` (the selected epoch), ``"last"``, or a checkpoint path.
        device (str, optional): ``"cpu"``, ``"cuda"``, ...; default the run's
            ``hardware.device``.
        model_factory (callable, optional): what the run was trained with
            (``run_experiment(model_factory=...)``); default TGL's compositions.

    Returns:
        TrainedRun: the model (evaluation mode), data and configuration.

    Raises:
        ConfigError: a directory without ``config_resolved.yaml`` or a missing checkpoint.
    """
    from pyg_tgl.train.context import Context, build_model, load_data, resolve_device
    from pyg_tgl.train.resume import load_model_state
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config_resolved.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"run_dir: {cfg_path} does not exist; give a directory written by "
                          f"python -m pyg_tgl.run")
    # Read through the schema's defaults: a run of an older layout lacks the options added since.
    cfg = OmegaConf.create(with_defaults(OmegaConf.to_container(OmegaConf.load(cfg_path))))
    ckpt_path = run_dir / "checkpoints" / f"{checkpoint}.pt" if checkpoint in ("best", "last") \
        else Path(checkpoint)
    dev = resolve_device(device or OmegaConf.select(cfg, "hardware.device", default="auto"))
    try:
        state = load_checkpoint(ckpt_path, map_location=dev)
    except FileNotFoundError as e:
        raise ConfigError(f"checkpoint={checkpoint!r}: {e}") from e
    ds = load_data(cfg)
    context = Context(cfg, ds, dev)
    model = build_model(cfg, ds, dev, model_factory)
    load_model_state(model, state["model"])
    model.eval()
    return TrainedRun(run_dir, cfg, context, model, ckpt_path, state)
