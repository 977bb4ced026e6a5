"""The custom model of ``docs/models.md`` ("A model of your own"), run from the page itself: one
short file composing existing parts trains through ``run_experiment(model_factory=...)`` on the
offline default data set, beats chance, and its run loads back for inference."""
from __future__ import annotations

import re
from pathlib import Path

from test_train_loop import _isolated, cfg_of  # noqa: F401 (fixture)

from pyg_tgl.inference import load_run
from pyg_tgl.nn import IdentityEmbedding, PairHistory, TemporalGNN
from pyg_tgl.train.experiment import run_experiment

DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def _model_file() -> str:
    """The ``my_model.py`` code block of the page."""
    blocks = re.findall(r"```python\n(# my_model\.py\n.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/models.md must show my_model.py once"
    return blocks[0]


def test_the_documented_custom_model_trains_and_beats_chance(tmp_path):
    namespace: dict = {}
    exec(compile(_model_file(), str(DOC), "exec"), namespace)
    factory = namespace["memory_with_history"]
    cfg = cfg_of("quiet=true", "model=jodie", "train.lr=1e-3", "train.epoch=3",
                 "train.max_events=3000", "train.batch_size=200")
    result = run_experiment(cfg, tmp_path / "mine", progress=False, model_factory=factory)
    assert result["test"]["ap"] > 0.6, result["test"]
    run = load_run(tmp_path / "mine", model_factory=factory)
    model = run.model
    assert isinstance(model, TemporalGNN) and isinstance(model.embedding, IdentityEmbedding)
    assert isinstance(model.pair_history, PairHistory) and model.memory is not None
    # The checkpoint holds the custom model (the predictor sees the pair history) and its
    # test re-scores to the run's numbers.
    assert model.edge_predictor.dim_pair == model.pair_history.width
    again = run.test()
    assert (again["ap"], again["mrr"]) == (result["test"]["ap"], result["test"]["mrr"])
