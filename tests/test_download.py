"""Downloads against a local HTTP server on 127.0.0.1: resume, corruption, atomicity, and TGL's
download path of ``load_dataset('wiki')``."""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch

from pyg_tgl.data.download import CHECKSUMS_FILE, DownloadError, download_url


class _Server:
    """Serves ``files`` (path -> bytes) with HTTP Range support and injectable faults:
    ``cut[path] = n`` sends only the first ``n`` bytes of a full response then drops the
    connection (once); ``ignore_range`` answers range requests with the whole file."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.cut: Dict[str, int] = {}
        self.ignore_range = False
        self.requests: List[Dict[str, Optional[str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                rng = self.headers.get("Range")
                server.requests.append({"path": self.path, "range": rng})
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "not found")
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                cut = server.cut.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_download_verifies_and_records_checksum(server, tmp_path):
    body = _payload()
    server.files["/a.bin"] = body
    dest = tmp_path / "a.bin"
    out = download_url(f"{server.url}/a.bin", dest, progress=False, chunk_bytes=4096)
    assert out == dest and dest.read_bytes() == body
    assert not dest.with_name("a.bin.part").exists()
    rec = json.loads((tmp_path / CHECKSUMS_FILE).read_text())
    assert rec["a.bin"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert rec["a.bin"]["size"] == len(body)
    # Present and of the right size: no second request.
    n = len(server.requests)
    download_url(f"{server.url}/a.bin", dest, progress=False)
    assert len(server.requests) == n


def test_interrupted_download_resumes_with_range(server, tmp_path):
    body = _payload()
    server.files["/b.bin"] = body
    server.cut["/b.bin"] = 100_000
    dest = tmp_path / "b.bin"
    part = tmp_path / "b.bin.part"
    with pytest.raises(DownloadError, match="resumes"):
        download_url(f"{server.url}/b.bin", dest, progress=False, retries=0, chunk_bytes=4096)
    assert not dest.exists()
    assert part.stat().st_size == 100_000  # kept for the resume
    download_url(f"{server.url}/b.bin", dest, progress=False, retries=0,
                 sha256=hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body and not part.exists()
    assert server.requests[-1]["range"] == "bytes=100000-"


def test_retry_resumes_within_one_call(server, tmp_path):
    body = _payload(seed=1)
    server.files["/c.bin"] = body
    server.cut["/c.bin"] = 12_345
    dest = download_url(f"{server.url}/c.bin", tmp_path / "c.bin", progress=False, retries=2)
    assert dest.read_bytes() == body
    assert [r["range"] for r in server.requests] == [None, "bytes=12345-"]


def test_corrupted_download_leaves_nothing(server, tmp_path):
    body = _payload(seed=2)
    server.files["/d.bin"] = body
    dest = tmp_path / "d.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError, match="SHA-256"):
        download_url(f"{server.url}/d.bin", dest, sha256=wrong, progress=False)
    assert not dest.exists() and not (tmp_path / "d.bin.part").exists()


def test_size_mismatch_is_an_error(server, tmp_path):
    server.files["/e.bin"] = _payload(1000)
    with pytest.raises(DownloadError, match="expected 2000"):
        download_url(f"{server.url}/e.bin", tmp_path / "e.bin", size=2000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_changed_upstream_file_fails_against_recorded_checksum(server, tmp_path):
    server.files["/f.bin"] = _payload(5000, seed=3)
    dest = download_url(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    dest.unlink()
    server.files["/f.bin"] = _payload(5000, seed=4)  # same size, other content
    with pytest.raises(DownloadError, match="does not match"):
        download_url(f"{server.url}/f.bin", dest, progress=False)
    assert not dest.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = _payload(seed=5)
    server.files["/g.bin"] = body
    (tmp_path / "g.bin.part").write_bytes(body[:777])
    server.ignore_range = True
    dest = download_url(f"{server.url}/g.bin", tmp_path / "g.bin", progress=False)
    assert dest.read_bytes() == body


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_url(f"{server.url}/missing.bin", tmp_path / "x.bin", progress=False)
    assert not (tmp_path / "x.bin").exists()


# ------------------------------------------------------------------------------------------------
# TGL's download path of load_dataset
# ------------------------------------------------------------------------------------------------

def _tgl_files(E: int = 40, N: int = 12, d: int = 5, seed: int = 0) -> Dict[str, bytes]:
    import io
    rng = np.random.default_rng(seed)
    src = rng.integers(0, N // 2, E)
    dst = rng.integers(N // 2, N, E)
    t = np.sort(rng.integers(0, 1000, E)).astype(float)
    roll = np.repeat([0, 1, 2], [E - 12, 6, 6])
    lines = [",src,dst,time,int_roll,ext_roll"]
    lines += [f"{i},{s},{o},{tt},{r},{r}" for i, (s, o, tt, r) in enumerate(zip(src, dst, t, roll))]
    edges = ("\n".join(lines) + "\n").encode()
    buf = io.BytesIO()
    torch.save(torch.from_numpy(rng.standard_normal((E, d)).astype(np.float32)), buf)
    labels = ",node,time,label,ext_roll\n" + "".join(
        f"{i},{s},{tt},{int(i % 7 == 0)},{r}\n" for i, (s, tt, r) in enumerate(zip(src, t, roll)))
    return {"edges.csv": edges, "edge_features.pt": buf.getvalue(), "labels.csv": labels.encode()}


def test_wiki_downloads_from_bucket_layout(server, tmp_path, monkeypatch):
    from pyg_tgl.data.datasets import load_dataset

    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))
    files = _tgl_files()
    for name, body in files.items():
        server.files[f"/WIKI/{name}"] = body
    root = tmp_path / "WIKI"
    ds = load_dataset("wiki", root=str(root), url=f"{server.url}/WIKI", expected_events=40,
                      expected_nodes=None, progress=False)
    assert ds.num_events == 40 and ds.edge_feat.shape == (40, 5)
    assert (ds.split["train"].stop, ds.split["val"].stop) == (28, 34)  # TGL's ext_roll
    assert ds.node_labels is not None and len(ds.node_labels) == 40
    rec = json.loads((root / CHECKSUMS_FILE).read_text())
    assert set(rec) == set(files)
    assert rec["edges.csv"]["sha256"] == hashlib.sha256(files["edges.csv"]).hexdigest()
    assert sorted(r["path"] for r in server.requests) == sorted(f"/WIKI/{n}" for n in files)
    # A second load uses the downloaded files and the processed cache: no network.
    n = len(server.requests)
    ds2 = load_dataset("wiki", root=str(root), url=f"{server.url}/WIKI", expected_events=40,
                       expected_nodes=None, progress=False)
    assert len(server.requests) == n
    assert torch.equal(ds2.data.src, ds.data.src)


def test_wiki_truncated_download_fails_event_count(server, tmp_path, monkeypatch):
    from pyg_tgl.data.datasets import load_dataset
    from pyg_tgl.data.readers import DataFormatError

    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))
    for name, body in _tgl_files().items():
        server.files[f"/WIKI/{name}"] = body
    with pytest.raises(DataFormatError, match="157,474 expected"):
        load_dataset("wiki", root=str(tmp_path / "W"), url=f"{server.url}/WIKI",
                     progress=False)


def test_wiki_bad_checksum_from_config(server, tmp_path, monkeypatch):
    from pyg_tgl.data.datasets import load_dataset

    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "cache"))
    for name, body in _tgl_files().items():
        server.files[f"/WIKI/{name}"] = body
    root = tmp_path / "W"
    with pytest.raises(DownloadError, match="SHA-256"):
        load_dataset("wiki", root=str(root), url=f"{server.url}/WIKI", expected_events=40,
                     checksums={"edges.csv": {"sha256": "0" * 64, "size": None}}, progress=False)
    assert not (root / "edges.csv").exists() and not (root / "edges.csv.part").exists()


def test_download_disabled_names_the_missing_file(tmp_path, monkeypatch):
    from pyg_tgl.data.datasets import load_dataset

    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MOOC.*edges\.csv.*download=true"):
        load_dataset("mooc", download=False)
