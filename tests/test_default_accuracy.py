"""The offline default data set trains a memory model well with no option added.

A node that never had an event has ``memory_ts = 0``; on Unix times its first update encodes a gap
of about 1e9 s. With times shifted to start at 0 (``data.time_shift``, now every data set's
default) plain JODIE learns: measured on CollegeMsg, TGL protocol, 5 epochs: test AP 0.80 against
EdgeBank's 0.73, where the unshifted times gave 0.57-0.61."""
from __future__ import annotations

import torch
from test_train_loop import _isolated, cfg_of  # noqa: F401 (fixture)

from pyg_tgl.train.experiment import run_experiment


def test_plain_jodie_on_the_offline_default_beats_edgebank(tmp_path):
    torch.set_num_threads(2)
    jodie = run_experiment(cfg_of("quiet=true", "model=jodie"), tmp_path / "jodie",
                           progress=False)
    edgebank = run_experiment(cfg_of("quiet=true", "model=edgebank"), tmp_path / "edgebank",
                              progress=False)
    assert len(jodie["epochs"]) == 5 and jodie["split"] == edgebank["split"]
    assert jodie["test"]["ap"] > edgebank["test"]["ap"] + 0.03, (jodie["test"], edgebank["test"])
