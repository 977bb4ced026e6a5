"""TGB's link-prediction edge lists (``tgbl-*``, Huang et al., NeurIPS 2023) that the user already
has, read with py-tgb's pre-processing."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..readers import Column, parse_iso_datetimes, read_table, source_from_path
from ..storage import PathLike
from .jodie import read_jodie
from .raw import RawEvents

__all__ = ["TGB_SPECS", "find_tgb_file", "read_tgb"]


@dataclass(frozen=True)
class _TgbSpec:
    layout: str          # "jodie" | "tsdw" (ts,src,dst,weight) | "comment" | "flight"
    files: Sequence[str]


#: Link-prediction data sets of TGB (Huang et al., NeurIPS 2023) and their file layouts.
TGB_SPECS: Dict[str, _TgbSpec] = {
    "tgbl-wiki": _TgbSpec("jodie", ("tgbl-wiki_edgelist_v2.csv", "tgbl-wiki_edgelist.csv")),
    "tgbl-subreddit": _TgbSpec("jodie", ("tgbl-subreddit_edgelist_v2.csv",
                                         "tgbl-subreddit_edgelist.csv")),
    "tgbl-lastfm": _TgbSpec("jodie", ("tgbl-lastfm_edgelist_v2.csv", "tgbl-lastfm_edgelist.csv")),
    "tgbl-review": _TgbSpec("tsdw", ("tgbl-review_edgelist_v2.csv", "tgbl-review_edgelist.csv")),
    "tgbl-coin": _TgbSpec("tsdw", ("tgbl-coin_edgelist_v2.csv", "tgbl-coin_edgelist.csv")),
    "tgbl-comment": _TgbSpec("comment", ("tgbl-comment_edgelist_v2.csv",
                                         "tgbl-comment_edgelist.csv")),
    "tgbl-flight": _TgbSpec("flight", ("tgbl-flight_edgelist_v2.csv", "tgbl-flight_edgelist.csv")),
}


def find_tgb_file(dataset: str, path: Optional[PathLike]) -> Path:
    """The edge list of a TGB data set: ``path`` itself when it is a file, else the known file
    names inside ``path`` (or inside py-tgb's data folder when py-tgb is installed)."""
    if dataset not in TGB_SPECS:
        raise ValueError(f"tgb: unknown data set {dataset!r}; known: {sorted(TGB_SPECS)}")
    spec = TGB_SPECS[dataset]
    folders: List[Path] = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        folders += [p, p / dataset.replace("-", "_")]
    else:
        try:  # py-tgb keeps its downloads inside its package folder
            from tgb.utils.info import PROJ_DIR  # type: ignore
            folders.append(Path(PROJ_DIR) / "datasets" / dataset.replace("-", "_"))
        except Exception:  # noqa: BLE001 - py-tgb absent or changed: fall through to the error
            pass
    for folder in folders:
        for name in spec.files:
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(f) for f in folders) or "(no folder: pass path=)"
    raise FileNotFoundError(f"tgb: no edge list of {dataset} ({' or '.join(spec.files)}) in "
                            f"{looked}; download it from https://tgb.complexdatalab.com and pass "
                            f"data.path=<file or folder>")


def read_tgb(dataset: str, file: Path, *, spill_dir: Optional[Path] = None,
             progress: bool = False) -> RawEvents:
    r"""Reads a TGB ``tgbl-*`` edge list the user already has, following py-tgb's
    pre-processing: JODIE-layout files (wiki, subreddit, lastfm) shift item ids after users;
    ``review``/``coin`` use ``ts,src,dst,weight`` with the weight as edge feature (``coin``:
    ``log2``, zero weights counted as 1); ``comment`` has ``ts,src,dst,subreddit,num_words,score``
    (features ``num_words / 5000`` and ``score``); ``flight`` has ``day,src,dst,callsign,typecode``
    with ISO dates (no features). Text node ids are mapped to integers in order of first sorted
    appearance.
    """
    layout = TGB_SPECS[dataset].layout
    if layout == "jodie":
        raw = read_jodie(file, bipartite=True, spill_dir=spill_dir, progress=progress)
        raw.info["format"] = f"tgb ({dataset})"
        return raw
    src_ = source_from_path(file)
    if layout == "tsdw":
        tb = read_table(src_, {"t": Column(0), "src": Column(1, "str"), "dst": Column(2, "str"),
                               "w": Column(3)}, header=True, progress=progress)
        w = tb.columns["w"]
        if dataset == "tgbl-coin":
            w = np.log2(np.where(w == 0, 1.0, w))
        msg = w.astype(np.float32)[:, None]
        t = tb.columns["t"]
    elif layout == "comment":
        tb = read_table(src_, {"t": Column(0), "src": Column(1, "str"), "dst": Column(2, "str"),
                               "words": Column(4), "score": Column(5)}, header=True,
                        progress=progress)
        msg = np.stack([tb.columns["words"] / 5000.0, tb.columns["score"]], 1).astype(np.float32)
        t = tb.columns["t"]
    else:  # flight
        tb = read_table(src_, {"day": Column(0, "str"), "src": Column(1, "str"),
                               "dst": Column(2, "str")}, header=True, progress=progress)
        t = parse_iso_datetimes(tb.columns["day"], tb.where, "day")
        msg = None
    return RawEvents(tb.columns["src"], tb.columns["dst"], t, tb.where, msg=msg,
                     msg_source=str(file), info={"format": f"tgb ({dataset})"})
