"""TGL's folder format (Zhou et al., VLDB 2022): ``edges.csv`` with header
``,src,dst,time,int_roll,ext_roll``, optional ``edge_features.pt`` ``[E, d_e]``,
``node_features.pt`` ``[N, d_v]`` and ``labels.csv`` (``,node,time,label,ext_roll``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents, RawLabels, require_file

__all__ = ["load_feature_file", "read_tgl", "check_gdelt_node_features"]


def load_feature_file(path: Path, rows: Optional[int], what: str) -> torch.Tensor:
    """Loads a TGL ``*.pt`` feature tensor memory-mapped when the file allows it (PyTorch's zip
    format) and checks its row count."""
    try:
        feat = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:
        # Legacy (pre-1.6) serialisation cannot be memory-mapped.
        feat = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataFormatError(f"{path}: cannot be read as a PyTorch tensor file ({e}); expected "
                              f"{what} saved with torch.save") from None
    if not isinstance(feat, torch.Tensor):
        raise DataFormatError(f"{path}: holds a {type(feat).__name__}, expected a tensor of {what}")
    if feat.dim() == 1:
        feat = feat.unsqueeze(1)
    if feat.dim() != 2:
        raise DataFormatError(f"{path}: tensor of shape {tuple(feat.shape)}, expected 2-D {what}")
    if rows is not None and feat.size(0) != rows:
        raise DataFormatError(f"{path}: {feat.size(0)} rows of {what} but {rows} are expected "
                              f"(one per {'event' if 'edge' in what else 'node'}); the file does "
                              f"not belong to this data set or is truncated")
    return feat


def read_tgl(root: Path, *, spill_dir: Optional[Path] = None, progress: bool = False,
             node_features: bool = True, edge_features: bool = True) -> RawEvents:
    """Reads a TGL-format folder (``edges.csv`` + optional features and ``labels.csv``)."""
    root = Path(root)
    edges = require_file(root / "edges.csv", "TGL edges.csv", "a TGL data folder holds "
                         "edges.csv (header ',src,dst,time,int_roll,ext_roll')")
    tb = read_table(source_from_path(edges), {
        "src": Column("src", "id"), "dst": Column("dst", "id"), "t": Column("time"),
        "roll": Column("ext_roll", "int", optional=True)}, header=True, spill_dir=spill_dir,
        progress=progress)
    if tb.num_rows == 0:
        raise DataFormatError(f"{edges}: header only, no events; expected at least one row")
    roll = tb.columns.get("roll")
    if roll is not None and roll.size:
        if roll.min() < 0 or roll.max() > 2:
            r = int(np.flatnonzero((roll < 0) | (roll > 2))[0])
            raise DataFormatError(f"{tb.where(r)}: ext_roll is {roll[r]}, expected 0 (train), 1 "
                                  f"(validation) or 2 (test)")
        roll = roll.astype(np.int8)
    E = tb.num_rows
    raw = RawEvents(tb.columns["src"], tb.columns["dst"], tb.columns["t"], tb.where, roll=roll,
                    remap=False, info={"format": "tgl"})
    ef = root / "edge_features.pt"
    if edge_features and ef.is_file():
        raw.msg = load_feature_file(ef, E, "edge features")
        raw.msg_source = str(ef)
    nf = root / "node_features.pt"
    if node_features and nf.is_file():
        raw.node_feat = load_feature_file(nf, None, "node features")
        raw.node_feat_source = str(nf)
        raw.num_nodes = int(raw.node_feat.size(0))
    lf = root / "labels.csv"
    if lf.is_file():
        lt = read_table(source_from_path(lf), {
            "node": Column("node", "id"), "t": Column("time"), "y": Column("label", "int"),
            "roll": Column("ext_roll", "int", optional=True)}, header=True)
        raw.labels = RawLabels(lt.columns["node"], lt.columns["t"], lt.columns["y"],
                               lt.columns.get("roll"))
        raw.info["labels_source"] = str(lf)
    return raw


def check_gdelt_node_features(ds: Any) -> None:
    """Refuses TGL's first GDELT upload, whose node features are the same for every node
    (amazon-science/tgl#10, re-uploaded 2022-06-29); a sample of rows is enough to recognise it.

    Args:
        ds: the loaded :class:`~pyg_tgl.data.temporal_dataset.TemporalDataset`.
    """
    nf = ds.node_feat
    if nf is None or nf.size(0) < 2:
        return
    rows = torch.linspace(0, nf.size(0) - 1, min(nf.size(0), 256)).long()
    sample = nf[rows].float()
    if bool((sample == sample[0]).all()):
        raise DataFormatError(
            f"{ds.info.get('node_feat_source', 'node_features.pt')}: every node has the same "
            f"features: this is TGL's first, defective GDELT upload (amazon-science/tgl issue "
            f"#10). Delete the GDELT folder and download all its files again.")
