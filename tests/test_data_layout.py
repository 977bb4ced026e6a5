"""The layout of pyg_tgl/data: modules of at most 450 lines, the names that the split moved still
import from where they were, and one inductive mask for the data set and the trainer."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "pyg_tgl" / "data"

#: Module -> names importable from it before data/ was split by job.
OLD_NAMES = {
    "pyg_tgl.data.datasets": [
        "TemporalDataset", "NodeLabels", "load_dataset", "list_datasets", "dataset_options",
        "shared_data_dir", "DataFormatError", "TGL_DATASETS", "FORMAT_VERSION", "SHARED_ENV",
        "COMMON_OPTIONS", "chronological_bounds"],
    "pyg_tgl.data.formats": [
        "RawEvents", "RawLabels", "read_tgl", "read_jodie", "read_dyglib", "read_edge_list",
        "read_collegemsg_wheel", "read_travian", "read_primaryschool", "read_tgb", "TGB_SPECS",
        "as_integers", "find_tgb_file", "load_feature_file"],
    "pyg_tgl.data.readers": [
        "DataFormatError", "TextSource", "Column", "Table", "LineMap", "read_table",
        "source_from_path", "sources_from_zip", "check_times", "parse_iso_datetimes"],
    "pyg_tgl.data.loader": [
        "TemporalNeighborLoader", "NegativeSampler", "shard_bounds", "NEG_STRATEGIES",
        "ROOT_TIMES", "EventSelection"],
    "pyg_tgl.train.splits": ["cap_split", "inductive_mask", "seen_nodes"],
    "pyg_tgl.data": ["load_dataset", "TemporalDataset", "TemporalNeighborLoader",
                     "NegativeSampler"],
}


def test_no_data_module_is_over_450_lines():
    sizes = {str(p.relative_to(DATA)): len(p.read_text().splitlines())
             for p in DATA.rglob("*.py")}
    assert len(sizes) > 20
    assert {k: v for k, v in sizes.items() if v > 450} == {}


@pytest.mark.parametrize("module", sorted(OLD_NAMES))
def test_names_still_import_from_their_old_modules(module):
    mod = importlib.import_module(module)
    missing = [n for n in OLD_NAMES[module] if not hasattr(mod, n)]
    assert missing == []


def test_one_inductive_mask_for_the_data_set_and_the_trainer(tmp_path, monkeypatch):
    from pyg_tgl.data import splits as data_splits
    from pyg_tgl.data.datasets import load_dataset
    from pyg_tgl.train import splits as train_splits

    assert train_splits.inductive_mask is data_splits.inductive_mask
    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))
    # 14 training events among nodes 0..3; node 8 first occurs in validation, 9 in the test.
    rows = [(0, 1), (1, 2), (2, 0), (0, 3), (3, 1), (2, 3), (1, 0), (3, 2), (0, 2), (1, 3),
            (2, 1), (3, 0), (0, 1), (1, 2), (8, 2), (0, 1), (1, 8), (9, 1), (2, 3), (8, 9)]
    p = tmp_path / "e.csv"
    p.write_text("src,dst,t\n" + "".join(f"{a},{b},{i}\n" for i, (a, b) in enumerate(rows)))
    for cache in (True, False, True):  # built, in memory, read back from the cache
        ds = load_dataset("csv", path=str(p), remap_nodes=False, cache=cache, progress=False)
        s = ds.split
        assert (s["train"].stop, s["val"].stop) == (14, 17)
        mask = data_splits.inductive_mask(ds.data.src, ds.data.dst, ds.num_nodes, s["train"],
                                          s["test"])
        assert ds.inductive_test_mask.tolist() == mask.tolist() == [True, False, True]
    val = data_splits.inductive_mask(ds.data.src, ds.data.dst, ds.num_nodes, s["train"],
                                     s["val"])
    assert val.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="contiguous slices"):
        data_splits.inductive_mask(ds.data.src, ds.data.dst, ds.num_nodes, slice(0, None),
                                   s["test"])
    assert torch.equal(data_splits.seen_nodes(ds.data.src, ds.data.dst, ds.num_nodes,
                                              s["train"])[:4], torch.ones(4, dtype=torch.bool))
