"""Summary table of a Hydra multirun: mean and standard deviation over seeds.

After ``python -m pyg_tgl.run -m model=tgn,tgat train.batch_size=600,2000 seed=0,1,2`` the
:class:`SweepSummaryCallback` (registered in ``conf/config.yaml``) scans the sweep directory, groups
the jobs by their command-line overrides *except* ``seed``, and writes ``summary.csv`` and
``summary.md`` there. The same is available by hand: ``python -m pyg_tgl.train.summary SWEEP_DIR``.

Standard deviations are sample standard deviations (``ddof=1``); with a single seed they are 0.
Jobs without a finished ``metrics.json`` (failed or still running) are counted in the
``incomplete`` column, never averaged in.
"""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

try:  # Hydra is a dependency of the runner; the summary itself also works without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]

#: (column, path into metrics.json) of the aggregated quantities, in table order.
METRICS: Sequence[Tuple[str, Tuple[str, ...]]] = (
    ("val_ap", ("val", "ap")),
    ("val_auc", ("val", "auc")),
    ("test_ap", ("test", "ap")),
    ("test_auc", ("test", "auc")),
    ("test_mrr", ("test", "mrr")),
    ("test_ap_batch_mean", ("test", "ap_batch_mean")),
    ("test_inductive_ap", ("test", "inductive_ap")),
    ("test_num_inductive", ("test", "num_inductive")),
    ("node_test", ("node", "test")),
    ("seconds_per_epoch", ("seconds_per_epoch",)),
)

#: Overrides that never distinguish configurations.
IGNORED_KEYS = ("seed", "quiet", "resume")


def _lookup(d: Dict[str, Any], path: Tuple[str, ...]) -> Optional[float]:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    if isinstance(d, (int, float)) and not isinstance(d, bool) and not math.isnan(float(d)):
        return float(d)
    return None


def mean_std(xs: List[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation; no deviation from a single run (not 0: unknown)."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def format_mean_std(mean: float, std: Optional[float]) -> str:
    """``"0.9200 ± 0.0283"``, or the mean alone when the spread is unknown."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _parse_override(o: str) -> Tuple[str, str]:
    key, _, value = o.partition("=")
    return key.lstrip("+~"), value


def collect_runs(sweep_dir: Union[str, Path]) -> List[Dict[str, Any]]:
    """Reads every job directory under ``sweep_dir`` (those holding ``.hydra/overrides.yaml``).

    Returns:
        list of dict: ``{"dir", "overrides": {key: value}, "seed", "metrics": dict or None}``
        (``seed`` from the overrides, else from the job's composed configuration).
    """
    sweep_dir = Path(sweep_dir)
    runs = []
    for ov in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        job = ov.parent.parent
        overrides = yaml.safe_load(ov.read_text()) or []
        if not any(_parse_override(o)[0] == "seed" for o in overrides):
            # No seed on the command line: the composed configuration holds the one used.
            cfg_path = job / ".hydra" / "config.yaml"
            cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else None
            seed = cfg.get("seed") if isinstance(cfg, dict) else None
        else:
            seed = None
        metrics_path = job / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        if metrics is not None and not metrics.get("finished", True):
            metrics = None
        parsed = dict(_parse_override(o) for o in overrides)
        runs.append({"dir": str(job), "overrides": parsed,
                     "seed": parsed.get("seed", "" if seed is None else str(seed)),
                     "metrics": metrics})
    return runs


def summarize(runs: List[Dict[str, Any]]) -> Tuple[List[str], List[Dict[str, Any]]]:
    """Groups runs by their overrides (minus ``seed``) and aggregates :data:`METRICS`.

    Returns:
        (columns, rows): ``rows`` are dictionaries with the override keys, ``runs``, ``seeds``,
        ``incomplete`` and ``<metric>_mean`` / ``<metric>_std`` for every metric present.
    """
    keys: List[str] = []
    for r in runs:
        for k in r["overrides"]:
            if k not in IGNORED_KEYS and not k.startswith("hydra.") and k not in keys:
                keys.append(k)
    groups: Dict[Tuple[str, ...], List[Dict[str, Any]]] = {}
    for r in runs:
        gk = tuple(r["overrides"].get(k, "") for k in keys)
        groups.setdefault(gk, []).append(r)
    present = [name for name, path in METRICS
               if any(r["metrics"] and _lookup(r["metrics"], path) is not None for r in runs)]
    rows = []
    for gk, members in groups.items():
        ok = [m for m in members if m["metrics"] is not None]
        row: Dict[str, Any] = dict(zip(keys, gk))
        row["runs"] = len(ok)
        row["incomplete"] = len(members) - len(ok)
        row["seeds"] = ",".join(sorted({m["seed"] for m in ok}))
        for name, path in METRICS:
            if name not in present:
                continue
            xs = [v for v in (_lookup(m["metrics"], path) for m in ok) if v is not None]
            if xs:
                row[f"{name}_mean"], row[f"{name}_std"] = mean_std(xs)
            else:
                row[f"{name}_mean"] = row[f"{name}_std"] = None
        rows.append(row)
    columns = keys + ["runs", "incomplete", "seeds"]
    for name in present:
        columns += [f"{name}_mean", f"{name}_std"]
    return columns, rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_summary(sweep_dir: Union[str, Path]) -> Tuple[Path, Path]:
    """Writes ``summary.csv`` and ``summary.md`` into ``sweep_dir``; returns their paths.

    Raises:
        FileNotFoundError: when ``sweep_dir`` holds no Hydra job directory.
    """
    sweep_dir = Path(sweep_dir)
    runs = collect_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(
            f"{str(sweep_dir)!r} holds no Hydra job directory (no */.hydra/overrides.yaml)")
    columns, rows = summarize(runs)
    csv_path = sweep_dir / "summary.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in columns})
    # Markdown: one "mean ± std" cell per metric; overrides shared by every row go above the
    # table instead of filling columns.
    keys = [c for c in columns if not c.endswith(("_mean", "_std"))]
    override_keys = keys[:len(keys) - 3]
    common = [k for k in override_keys if len(rows) > 1 and len({r.get(k) for r in rows}) == 1]
    keys = [k for k in keys if k not in common]
    metric_names = [c[:-5] for c in columns if c.endswith("_mean")]
    lines = []
    if common:
        lines += ["Common to all rows: " + ", ".join(f"`{k}={rows[0][k]}`" for k in common), ""]
    lines += ["| " + " | ".join(keys + metric_names) + " |",
              "|" + "---|" * (len(keys) + len(metric_names))]
    for row in rows:
        cells = [_fmt(row.get(k)) for k in keys]
        for m in metric_names:
            mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
            cells.append("" if mean is None else format_mean_std(mean, std))
        lines.append("| " + " | ".join(cells) + " |")
    md_path = sweep_dir / "summary.md"
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


class SweepSummaryCallback(Callback):  # type: ignore[misc]
    """Hydra callback writing the sweep's summary table when a multirun ends."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            csv_path, md_path = write_summary(sweep_dir)
        except FileNotFoundError as e:
            print(f"pyg_tgl: no sweep summary written: {e}", file=sys.stderr)
            return
        print(f"pyg_tgl: sweep summary written to {csv_path} and {md_path}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m pyg_tgl.train.summary SWEEP_DIR``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m pyg_tgl.train.summary SWEEP_DIR", file=sys.stderr)
        return 2
    try:
        csv_path, md_path = write_summary(argv[0])
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(md_path.read_text(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
