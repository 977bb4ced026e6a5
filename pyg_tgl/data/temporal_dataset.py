r"""The data set object: :class:`TemporalDataset` (events, features, split, labels) and
:class:`NodeLabels`, as :func:`pyg_tgl.data.datasets.load_dataset` returns them."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from .storage import disk_full_guard

__all__ = ["TemporalDataset", "NodeLabels"]


@dataclass
class NodeLabels:
    r"""Dynamic node labels: node ``node[i]`` has class ``y[i]`` at time ``t[i]`` (sorted by time).

    Attributes:
        node: ``[L]`` int64 node ids (after remapping).
        t: ``[L]`` float64 times.
        y: ``[L]`` int64 classes.
        roll: ``[L]`` int8 TGL ``ext_roll`` (0 train, 1 val, 2 test) when the data set gives one.
        classes: class names when the raw labels were text.
    """

    node: Tensor
    t: Tensor
    y: Tensor
    roll: Optional[Tensor] = None
    classes: Optional[List[str]] = None

    def __len__(self) -> int:
        return int(self.node.numel())

    @property
    def num_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        return int(self.y.max()) + 1 if self.y.numel() else 0

    def counts(self) -> Dict[int, int]:
        """Number of labels per class."""
        vals, cnt = torch.unique(self.y, return_counts=True)
        return {int(v): int(c) for v, c in zip(vals, cnt)}


class TemporalDataset:
    r"""A temporal interaction data set: events, features, splits and labels.

    Built by :func:`load_dataset`. Events are sorted by time (ties in file order).

    Attributes:
        name: registry name (``"wiki"``, ``"collegemsg"``, ...).
        data: :class:`torch_geometric.data.TemporalData` with ``src``, ``dst`` (int64), ``t``
            (float64, non-decreasing), optional ``msg`` (edge features, float32/float16, possibly
            memory-mapped) and optional ``y`` (per-event integer label).
        num_nodes: number of nodes (ids ``0 .. num_nodes - 1``).
        node_feat: ``[num_nodes, d_v]`` node features or ``None``.
        split: ``train``, ``val``, ``test`` (``slice`` objects over event order) and
            ``inductive_test_mask`` (``[num_test]`` bool, the event touches a node unseen in
            training).
        node_labels: :class:`NodeLabels` or ``None``.
        node_ids: raw id of each node when ids were remapped (int64, or text ids), else ``None``.
        info: format details (source files, time unit, feature names, ...).
        cache_dir: folder of the processed files (``None`` with ``cache=False``).
        time_origin: what ``time_shift`` subtracted from every time (events and node labels):
            ``data.t + time_origin`` is the time in the file's own scale (Unix seconds, ...);
            ``0.0`` when nothing was subtracted.
    """

    def __init__(self, name: str, data: TemporalData, num_nodes: int, *,
                 node_feat: Optional[Tensor] = None, split: Optional[Dict[str, Any]] = None,
                 node_labels: Optional[NodeLabels] = None, node_ids: Optional[Any] = None,
                 info: Optional[Dict[str, Any]] = None, cache_dir: Optional[Path] = None,
                 split_desc: str = "", time_origin: float = 0.0) -> None:
        self.name = name
        self.data = data
        self.num_nodes = int(num_nodes)
        self.node_feat = node_feat
        self.split = split if split is not None else {}
        self.node_labels = node_labels
        self.node_ids = node_ids
        self.info = info or {}
        self.cache_dir = cache_dir
        self.split_desc = split_desc
        self.time_origin = float(time_origin)
        self._tcsr: Dict[bool, Any] = {}

    @property
    def num_events(self) -> int:
        return int(self.data.src.numel())

    @property
    def edge_feat(self) -> Optional[Tensor]:
        """Edge features ``[num_events, d_e]`` (``data.msg``) or ``None``."""
        return getattr(self.data, "msg", None)

    @property
    def inductive_test_mask(self) -> Optional[Tensor]:
        """``[num_test]`` bool: the test event touches a node never seen in training."""
        return self.split.get("inductive_test_mask")

    @property
    def train_data(self) -> TemporalData:
        return self._slice(self.split["train"])

    @property
    def val_data(self) -> TemporalData:
        return self._slice(self.split["val"])

    @property
    def test_data(self) -> TemporalData:
        return self._slice(self.split["test"])

    def _slice(self, s: slice) -> TemporalData:
        return TemporalData(**{k: v[s] for k, v in self.data.to_dict().items()})

    def tcsr(self, add_reverse: bool = True):
        r"""The T-CSR of the events (:class:`pyg_tgl.data.tcsr.TCSR`), built once and cached next
        to the processed files (``tcsr_rev.npz`` / ``tcsr_fwd.npz``).

        Args:
            add_reverse: list each event under both endpoints (undirected neighbourhoods).
        """
        add_reverse = bool(add_reverse)
        if add_reverse in self._tcsr:
            return self._tcsr[add_reverse]
        from .tcsr import TCSR  # written alongside; imported lazily to keep this module light

        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"tcsr_{'rev' if add_reverse else 'fwd'}.npz"
        graph = None
        if path is not None and path.exists():
            try:
                graph = TCSR.load(path, mmap=True)
            except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
                warnings.warn(f"rebuilding {path}: {e}")
                graph = None
        if graph is None:
            graph = TCSR.from_data(self.data, num_nodes=self.num_nodes, add_reverse=add_reverse)
            if path is not None:
                with disk_full_guard(path.parent):
                    graph.save(path)
        self._tcsr[add_reverse] = graph
        return graph

    def summary(self) -> str:
        """A human-readable description: sizes, time span, features, labels and splits."""
        from .summary import dataset_summary
        return dataset_summary(self)

    def __repr__(self) -> str:
        ef = self.edge_feat
        return (f"{type(self).__name__}({self.name!r}, num_nodes={self.num_nodes}, "
                f"num_events={self.num_events}, edge_dim={0 if ef is None else ef.size(1)}, "
                f"node_dim={0 if self.node_feat is None else self.node_feat.size(1)})")
