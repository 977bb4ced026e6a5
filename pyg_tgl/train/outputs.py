"""The files a run writes besides its checkpoints: ``metrics.json`` (atomically) and the
training curve (PNG)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List


def plot_curves(history: List[Dict[str, Any]], path: Path) -> None:
    """Train/val loss and validation AP/AUC/MRR per epoch, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["loss"] for h in history], marker="o", label="train")
    a.plot(epochs, [h.get("val_loss", math.nan) for h in history], marker="o", label="val")
    a.set_xlabel("epoch"), a.set_ylabel("BCE loss"), a.legend()
    for key in ("val_ap", "val_auc", "val_mrr"):
        b.plot(epochs, [h.get(key, math.nan) for h in history], marker="o", label=key)
    b.set_xlabel("epoch"), b.set_ylabel("validation"), b.legend()
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_json(obj: Dict[str, Any], path: Path) -> None:
    """``obj`` as indented JSON (NaN allowed), written atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=True))
    os.replace(tmp, path)
