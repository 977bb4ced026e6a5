"""The human-readable description of a :class:`~pyg_tgl.data.temporal_dataset.TemporalDataset` that
``python -m pyg_tgl.data info`` prints and :meth:`TemporalDataset.summary` returns."""
from __future__ import annotations

from typing import Any, List

import numpy as np
import torch

__all__ = ["dataset_summary"]


def _time_line(ds: Any) -> str:
    t0, t1 = float(ds.data.t[0]), float(ds.data.t[-1])
    origin = float(getattr(ds, "time_origin", 0.0))
    span = t1 - t0
    integral = t0.is_integer() and t1.is_integer() and origin.is_integer()
    fmt = (lambda x: f"{x:,.0f}") if integral else (lambda x: f"{x:g}")
    human = ""
    if ds.info.get("time_unit") == "s":
        human = f" = {span / 86400:,.1f} days"
        if t0 + origin > 1e8:  # Unix times: show the dates too
            d0, d1 = (np.datetime64(int(x + origin), "s").astype("datetime64[m]")
                      for x in (t0, t1))
            human += f", {str(d0).replace('T', ' ')} .. {str(d1).replace('T', ' ')} UTC"
    shifted = f"; the file's times minus {fmt(origin)} (time_shift)" if origin else ""
    distinct = int(torch.unique_consecutive(ds.data.t).numel())
    return (f"  time: {fmt(t0)} .. {fmt(t1)} (span {fmt(span)}{human}{shifted}), "
            f"{distinct:,} distinct timestamps")


def dataset_summary(ds: Any) -> str:
    """Sizes, time span (with the dates of Unix times, in the file's scale), features, labels,
    splits and the cache folder of ``ds``, one item per line."""
    E, N = ds.num_events, ds.num_nodes
    lines: List[str] = [f"{ds.name}: {N:,} nodes, {E:,} events"]
    if ds.info.get("description"):
        lines.append(f"  {ds.info['description']}")
    if E:
        lines.append(_time_line(ds))
    mapped = set(ds.info.get("memory_mapped", ()))
    for label, key, feat in (("edge", "msg", ds.edge_feat), ("node", "node_feat", ds.node_feat)):
        desc = "none"
        if feat is not None:
            desc = (f"{feat.size(1)} dims ({str(feat.dtype).replace('torch.', '')}"
                    f"{', memory-mapped' if key in mapped else ''})")
            if ds.info.get(f"random_{label}_features"):
                desc += ", random (rand_" + label + "_features)"
        lines.append(f"  {label} features: {desc}")
    y = getattr(ds.data, "y", None)
    if y is not None:
        vals, cnt = torch.unique(y, return_counts=True)
        lines.append("  event labels: " + ", ".join(f"{int(v)}: {int(c):,}"
                                                     for v, c in zip(vals, cnt)))
    if ds.node_labels is not None:
        nl = ds.node_labels
        counts = nl.counts()
        shown = list(counts.items())[:12]
        names = nl.classes
        desc = ", ".join(f"{names[k] if names else k}: {v:,}" for k, v in shown)
        more = f", ... ({len(counts)} classes)" if len(counts) > len(shown) else ""
        lines.append(f"  node labels: {len(nl):,} over "
                     f"{int(torch.unique(nl.node).numel()):,} nodes ({desc}{more})")
    if ds.split:
        tr, va, te = ds.split["train"], ds.split["val"], ds.split["test"]
        n = lambda s: s.stop - s.start  # noqa: E731
        ind = ds.inductive_test_mask
        ind_s = f", inductive test events: {int(ind.sum()):,}" if ind is not None else ""
        lines.append(f"  split ({ds.split_desc}): train {n(tr):,} | val {n(va):,} | "
                     f"test {n(te):,}{ind_s}")
    if ds.cache_dir is not None:
        lines.append(f"  cache: {ds.cache_dir}")
    return "\n".join(lines)
