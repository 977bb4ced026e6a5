"""Data input a new user meets first: the separator of a CSV file (detected by default, errors in
the user's own column numbering), node ids kept with ``remap_nodes=false`` that would need more
memory than the machine has, and times shifted to start at 0 by default with the origin kept."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli import REPO, run_cli
from pyg_tgl.data.datasets import load_dataset
from pyg_tgl.data.delimiters import normalize_delimiter
from pyg_tgl.data.node_ids import check_kept_ids
from pyg_tgl.data.readers import DataFormatError


# EVENTS are out of time order on purpose (the origin is the earliest time, not the first row's).
pytestmark = pytest.mark.filterwarnings("ignore:.*sorting them by time:UserWarning")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


EVENTS = [(3, 1, 1_600_000_050), (1, 2, 1_600_000_000), (2, 0, 1_600_000_100),
          (0, 3, 1_600_000_100)]


def _one_line_error(**options) -> str:
    """The message of the :class:`DataFormatError` that ``load_dataset("csv", **options)`` raises,
    checked to be one line."""
    with pytest.raises(DataFormatError) as info:
        load_dataset("csv", progress=False, **options)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def _expect(ds, time_shift: bool = True) -> None:
    """``ds`` holds EVENTS, sorted by time (ties in file order), ids kept (they are 0..3)."""
    order = sorted(range(len(EVENTS)), key=lambda i: EVENTS[i][2])
    assert ds.data.src.tolist() == [EVENTS[i][0] for i in order]
    assert ds.data.dst.tolist() == [EVENTS[i][1] for i in order]
    raw = [float(EVENTS[i][2]) for i in order]
    origin = raw[0] if time_shift else 0.0
    assert ds.time_origin == origin
    assert ds.data.t.tolist() == [x - origin for x in raw]


# ------------------------------------------------------------------------------------------------
# Item 2 of issue #24: the separator
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,text,sep", [
    ("comma.csv", "src,dst,t\n" + "".join(f"{a},{b},{c}\n" for a, b, c in EVENTS), ","),
    ("tab.tsv", "".join(f"{a}\t{b}\t{c}\n" for a, b, c in EVENTS), "\t"),
    # SNAP style, runs of spaces and a stray tab: any whitespace.
    ("snap.txt", "".join(f"{a}  {b} {c}\n" if a % 2 else f"{a}\t{b} {c}\n" for a, b, c in EVENTS),
     None),
    ("semi.csv", "src;dst;t\n" + "".join(f"{a};{b};{c}\n" for a, b, c in EVENTS), ";"),
])
def test_the_separator_is_detected_by_default(tmp_path, name, text, sep):
    path = _write(tmp_path, name, text)
    cols = {} if "src" in text else dict(src=0, dst=1, time=2)
    ds = load_dataset("csv", path=path, progress=False, **cols)
    _expect(ds)
    assert ds.info["delimiter"] == sep


def test_a_comma_inside_a_text_column_does_not_beat_whitespace(tmp_path):
    rows = "".join(f"{a} {b} {c} note,{a}\n" for a, b, c in EVENTS)
    ds = load_dataset("csv", path=_write(tmp_path, "e.txt", rows), src=0, dst=1, time=2,
                      progress=False)
    _expect(ds)
    assert ds.info["delimiter"] is None


def test_the_issue_command_line_now_reads_a_whitespace_file(tmp_path, capsys):
    """``data=csv data.path=FILE data.src=0 data.dst=1 data.time=2`` on a whitespace file failed
    with "column 2 (for dst) requested but the file has 1 columns per line"."""
    from pyg_tgl.data.__main__ import main

    path = _write(tmp_path, "ws.txt", "".join(f"{a} {b} {c}\n" for a, b, c in EVENTS))
    assert main(["info", "data=csv", f"data.path={path}", "data.src=0", "data.dst=1",
                 "data.time=2", "data.progress=false"]) == 0
    assert "csv: 4 nodes, 4 events" in capsys.readouterr().out


def test_a_wrong_separator_is_named_with_the_users_column_and_the_fix(tmp_path):
    path = _write(tmp_path, "ws.txt", "".join(f"{a} {b} {c}\n" for a, b, c in EVENTS))
    msg = _one_line_error(path=path, src=0, dst=1, time=2, delimiter=",")
    assert msg.startswith(f"{path}, line 1: data.dst=1 (positions count from 0) requested but "
                          f"the line has 1 field separated by ',': '3 1 1600000050' "
                          f"(data.delimiter=',')")
    assert msg.endswith("it has 3 fields when split at whitespace: set data.delimiter=null")


def test_a_header_split_at_the_wrong_separator_says_so(tmp_path):
    rows = "".join(f"{a} {b} {c}\n" for a, b, c in EVENTS)
    path = _write(tmp_path, "h.txt", "src dst t\n" + rows)
    with pytest.raises(DataFormatError, match=r"h\.txt: missing column 'src' \(for src\); the "
                       r"header has \['src dst t'\] split at ';' \(data\.delimiter=';'\); it has "
                       r"3 fields when split at whitespace: set data\.delimiter=null"):
        load_dataset("csv", path=path, delimiter=";", progress=False)


def test_a_short_line_names_the_detected_separator(tmp_path):
    path = _write(tmp_path, "e.csv", "src,dst,t\n0,1,5\n1,2,6\n2,3,7\n3,4\n")
    with pytest.raises(DataFormatError, match=r"e\.csv, line 5: expected 3 fields separated by "
                       r"',', found 2: '3,4' \(detected from the first lines; data\.delimiter "
                       r"sets it\)"):
        load_dataset("csv", path=path, progress=False)


@pytest.mark.parametrize("text,match", [
    ("0,1;5\n1,2;6\n", r"',' \(2 fields\) and ';' \(2 fields\) both split every line evenly; set "
                      r"data\.delimiter to one of ',', tab, ';', or null for whitespace"),
    ("0\n1\n", r"no candidate splits them into two or more fields \('0'\); set data\.delimiter"),
])
def test_an_undecidable_separator_asks_for_the_option(tmp_path, text, match):
    path = _write(tmp_path, "e.txt", text)
    with pytest.raises(DataFormatError, match=r"e\.txt: the field separator could not be detected "
                       r"from the first 2 lines: " + match):
        load_dataset("csv", path=path, src=0, dst=1, time=2, progress=False)


def test_separator_option_values():
    assert normalize_delimiter("tab") == normalize_delimiter("\\t") == "\t"
    assert normalize_delimiter("whitespace") is None and normalize_delimiter(None) is None
    assert normalize_delimiter("auto") == "auto" and normalize_delimiter(";") == ";"
    for bad in ("::", "", 3, '"'):
        with pytest.raises(ValueError, match=r"delimiter must be one character"):
            normalize_delimiter(bad)


# ------------------------------------------------------------------------------------------------
# Item 4b of issue #24: remap_nodes=false with an id of 2**40
# ------------------------------------------------------------------------------------------------

BIG = 2 ** 40
BIG_CSV = f"src,dst,t\n0,1,1\n1,{BIG},2\n2,0,3\n"


def test_a_huge_kept_id_is_refused_before_allocating(tmp_path):
    path = _write(tmp_path, "big.csv", BIG_CSV)
    msg = _one_line_error(path=path, remap_nodes=False)
    assert msg.startswith(f"{path}, line 3: dst is {BIG}; with remap_nodes=false ids index "
                          f"per-node arrays, so it implies num_nodes = 1,099,511,627,777, which "
                          f"needs at least 9.0 TiB (9 bytes per node")
    assert msg.endswith("set data.remap_nodes=true (or null) to map the ids to 0..N-1")
    # The default (null) maps the sparse ids.
    ds = load_dataset("csv", path=path, progress=False)
    assert ds.num_nodes == 4 and ds.node_ids.tolist() == [0, 1, 2, BIG]


def test_kept_ids_are_checked_against_the_memory():
    src, dst = np.array([0, 5, 2]), np.array([1, 2, 999])
    where = lambda r: f"f.csv, line {r + 2}"  # noqa: E731
    check_kept_ids(src, dst, 999, 0, where, memory_bytes=9000)  # 1,000 nodes x 9 B fit
    with pytest.raises(DataFormatError, match=r"f\.csv, line 4: dst is 999; .* num_nodes = 1,000, "
                       r"which needs at least 8\.8 KiB .* of this machine's 8\.8 KiB"):
        check_kept_ids(src, dst, 999, 0, where, memory_bytes=8999)
    check_kept_ids(src, dst, 999, 10 ** 6, where, memory_bytes=1)  # node features set the count
    with pytest.raises(DataFormatError, match=r"line 3: src is 5; with ids kept as the format's "
                       r"default"):
        check_kept_ids(src, np.array([1, 2, 3]), 5, 0, where, requested=False, memory_bytes=1)


def test_the_command_line_ends_a_huge_kept_id_with_one_line_and_exit_2(tmp_path):
    path = _write(tmp_path, "big.csv", BIG_CSV)
    proc = run_cli(["-m", "pyg_tgl.run", "data=csv", f"data.path={path}", "data.remap_nodes=false",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, data_home=tmp_path / "home",
                   check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data='csv': ") and f"dst is {BIG}" in last
    assert "data.remap_nodes=true" in last


# ------------------------------------------------------------------------------------------------
# Item 9 of issue #24 (data part): times start at 0 by default
# ------------------------------------------------------------------------------------------------

UNIX = "src,dst,t,y\n" + "".join(f"{a},{b},{c},{a % 2}\n" for a, b, c in EVENTS)


@pytest.mark.parametrize("cache", [True, False])
def test_unix_times_start_at_zero_by_default_with_the_origin_kept(tmp_path, cache):
    path = _write(tmp_path, "unix.csv", UNIX)
    with pytest.warns(UserWarning, match=r"line 3: time 1600000000 is earlier than the previous "
                      r"event's 1600000050; .* sorting"):
        ds = load_dataset("csv", path=path, label="y", cache=cache, progress=False)
    # The origin is the earliest time (row 2), not the first row's.
    _expect(ds)
    assert ds.time_origin == 1_600_000_000.0
    if cache:
        meta = json.loads((ds.cache_dir / "meta.json").read_text())
        assert meta["time_shift"] == 1_600_000_000.0 and meta["options"]["time_shift"] is True
    assert "time: 0 .. 100 (span 100; the file's times minus 1,600,000,000 (time_shift))" in \
        ds.summary()


def test_time_shift_false_keeps_the_raw_times_in_a_cache_of_its_own(tmp_path):
    path = _write(tmp_path, "unix.csv", UNIX)
    with pytest.warns(UserWarning, match="sorting"):
        shifted = load_dataset("csv", path=path, progress=False)
        raw = load_dataset("csv", path=path, time_shift=False, progress=False)
    _expect(raw, time_shift=False)
    assert raw.cache_dir != shifted.cache_dir
    assert "time_shift" not in json.loads((raw.cache_dir / "meta.json").read_text())
    again = load_dataset("csv", path=path, progress=False)  # cached: warns no more
    assert again.cache_dir == shifted.cache_dir
    _expect(again)
    assert torch.equal(raw.data.t - raw.data.t[0], again.data.t)


def test_node_labels_are_shifted_with_the_events(tmp_path):
    header = "user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"
    rows = "0,0,1600000000.0,0,0.5\n1,1,1600000010.0,1,0.25\n0,1,1600000030.0,0,0.125\n"
    path = _write(tmp_path, "jodie.csv", header + rows)
    ds = load_dataset("jodie", path=path, progress=False)
    assert ds.time_origin == 1_600_000_000.0
    assert ds.data.t.tolist() == [0.0, 10.0, 30.0]
    assert ds.node_labels.t.tolist() == [0.0, 10.0, 30.0]
    # Unix seconds: the summary shows the dates in the file's scale.
    assert "time: 0 .. 30 (span 30 = 0.0 days, 2020-09-13 12:26 .. 2020-09-13 12:27 UTC; the " \
        "file's times minus 1,600,000,000 (time_shift))" in ds.summary()
    raw = load_dataset("jodie", path=path, time_shift=False, progress=False)
    assert torch.equal(raw.node_labels.t, ds.node_labels.t + ds.time_origin)


def test_every_data_config_shifts_times_through_the_one_common_default():
    """``time_shift: true`` for every data set, defined once (the schema's options every data
    set shares, pyg_tgl/config/data.py), not repeated in each ``conf/data`` file."""
    from pyg_tgl.config.data import DataCommon
    from pyg_tgl.data.__main__ import data_config
    files = sorted((REPO / "conf" / "data").glob("*.yaml"))
    assert len(files) >= 19
    assert DataCommon().time_shift is True
    for f in files:
        assert "time_shift" not in f.read_text(), f.name
        assert data_config(f.stem)["time_shift"] is True, f.name
