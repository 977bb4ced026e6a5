"""TGL's model files (``config/*.yml``) read as pyg_tgl configurations: each of TGL's five files
builds the same model as pyg_tgl's shipped configuration, the command line and the preset win
over the file, and bad files fail with a message naming the file and the option."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml
from cli import run_cli
from omegaconf import OmegaConf

from pyg_tgl.config.model import GnnConfig
from pyg_tgl.models import build_model
from pyg_tgl.train.experiment import ConfigError, sampling_options
from pyg_tgl.train.tgl_config import (MODEL_SECTIONS, apply_tgl_config, command_line_keep,
                                      read_tgl_config, section_keys, to_yaml)

REPO = Path(__file__).resolve().parents[1]

# The values of TGL's config/<NAME>.yml (amazon-research/tgl), in TGL's layout: each section a
# list of one mapping, TGL's quoting and capitalised booleans.
_SAMPLING_1HOP = """sampling:
  - layer: 1
    neighbor:
      - 10
    strategy: 'recent'
    prop_time: False
    history: 1
    duration: 0
    num_thread: 32
"""
TGL_FILES = {
    "TGN": _SAMPLING_1HOP + """memory:
  - type: 'node'
    dim_time: 100
    deliver_to: 'self'
    mail_combine: 'last'
    memory_update: 'gru'
    mailbox_size: 1
    combine_node_feature: True
    dim_out: 100
gnn:
  - arch: 'transformer_attention'
    layer: 1
    att_head: 2
    dim_time: 100
    dim_out: 100
train:
  - epoch: 100
    batch_size: 600
    # reorder: 16
    lr: 0.0001
    dropout: 0.2
    att_dropout: 0.2
    all_on_gpu: True
""",
    "JODIE": """sampling:
  - no_sample: True
    history: 1
memory:
  - type: 'node'
    dim_time: 100
    deliver_to: 'self'
    mail_combine: 'last'
    memory_update: 'rnn'
    mailbox_size: 1
    combine_node_feature: True
    dim_out: 100
gnn:
  - arch: 'identity'
    time_transform: 'JODIE'
train:
  - epoch: 100
    batch_size: 600
    lr: 0.0001
    dropout: 0.1
    all_on_gpu: True
""",
    "APAN": _SAMPLING_1HOP + """    no_neg: True
memory:
  - type: 'node'
    dim_time: 100
    deliver_to: 'neighbors'
    mail_combine: 'last'
    memory_update: 'transformer'
    attention_head: 2
    mailbox_size: 10
    combine_node_feature: False
    dim_out: 100
gnn:
  - arch: 'identity'
train:
  - epoch: 100
    batch_size: 600
    lr: 0.0001
    dropout: 0.1
    att_dropout: 0.1
""",
    "TGAT": """sampling:
  - layer: 2
    neighbor:
      - 10
      - 10
    strategy: 'uniform'
    prop_time: False
    history: 1
    duration: 0
    num_thread: 32
memory:
  - type: 'none'
    dim_out: 0
gnn:
  - arch: 'transformer_attention'
    layer: 2
    att_head: 2
    dim_time: 100
    dim_out: 100
train:
  - epoch: 100
    batch_size: 600
    lr: 0.0001
    dropout: 0.1
    att_dropout: 0.1
    all_on_gpu: True
""",
    "DySAT": """sampling:
  - layer: 2
    neighbor:
      - 10
      - 10
    strategy: 'uniform'
    prop_time: True
    history: 3
    duration: 10000
    num_thread: 32
memory:
  - type: 'none'
    dim_out: 0
gnn:
  - arch: 'transformer_attention'
    layer: 2
    att_head: 2
    dim_time: 0
    dim_out: 100
    combine: 'rnn'
train:
  - epoch: 50
    batch_size: 600
    lr: 0.0001
    dropout: 0.1
    att_dropout: 0.1
    all_on_gpu: True
""",
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return path


def _shipped(name: str):
    return OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")


def _model_params(model_cfg) -> dict:
    torch.manual_seed(0)
    return build_model(model_cfg, num_nodes=50, edge_feat=torch.ones(30, 4)).state_dict()


@pytest.mark.parametrize("name", list(TGL_FILES))
def test_tgl_file_builds_the_shipped_model(name, tmp_path):
    """A TGL user's file and ``model=<name>`` give the same sampler options, training options
    and model, parameter for parameter from the same seed."""
    tgl = read_tgl_config(_write(tmp_path, name, TGL_FILES[name]))
    shipped = _shipped(name.lower())
    assert tgl["model"]["name"] == name.lower() == shipped.model.name
    assert sampling_options(tgl["model"]) == sampling_options(shipped.model)
    assert tgl["train"] == {k: v for k, v in OmegaConf.to_container(shipped.train).items()
                            if k in tgl["train"]}
    assert tgl["schedule"] is None
    ours = _model_params(shipped.model)
    # Converted, and also as TGL's lists straight into the module (build_model reads both).
    for model_cfg in (OmegaConf.create(tgl["model"]), yaml.safe_load(TGL_FILES[name])):
        theirs = _model_params(model_cfg)
        assert list(ours) == list(theirs)
        for key in ours:
            torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=0, msg=key)


def test_shipped_model_keys_are_all_known():
    """The file check knows every option pyg_tgl's own model files use (so a key added there
    cannot be refused in a user's TGL file)."""
    for path in sorted((REPO / "conf" / "model").glob("*.yaml")):
        model = yaml.safe_load(path.read_text())["model"]
        for section in MODEL_SECTIONS:
            assert set(model.get(section) or {}) <= set(section_keys(section)), (path.name,
                                                                                 section)


def test_reorder_all_on_gpu_and_precedence(tmp_path):
    text = TGL_FILES["TGN"].replace("# reorder: 16", "reorder: 8").replace(
        "all_on_gpu: True", "all_on_gpu: False")
    path = _write(tmp_path, "TGN_chunks", text)
    tgl = read_tgl_config(path)
    assert tgl["schedule"] == {"name": "random_chunk", "reorder": 8, "variant": "tgl"}
    assert tgl["hardware"] == {"all_on_gpu": False}
    cfg = OmegaConf.create({
        "model": OmegaConf.to_container(_shipped("jodie").model),
        "train": {"epoch": 5, "batch_size": 200, "lr": 0.01, "dropout": 0.5,
                  "att_dropout": 0.5, "loss": "bce"},
        "schedule": {"name": "chronological"},
        "hardware": {"device": "cpu", "all_on_gpu": True}})
    keep = command_line_keep(["train.lr=0.01", "+data.time_shift=true", "tgl_config=x"],
                             preset={"train": {"epoch": 5}})
    out = apply_tgl_config(cfg, path, keep)
    assert out.model.name == "tgn_chunks" and out.model.memory.memory_update == "gru"
    assert "time_proj" not in out.model.gnn  # the model group's options are gone
    # The command line (lr) and the preset (epoch) win; the file beats the defaults.
    assert (out.train.lr, out.train.epoch) == (0.01, 5)
    assert (out.train.batch_size, out.train.dropout, out.train.loss) == (600, 0.2, "bce")
    assert out.schedule.reorder == 8 and out.hardware == {"device": "cpu", "all_on_gpu": False}
    assert cfg.model.name == "jodie"  # the input is left alone
    # A schedule chosen on the command line keeps the whole section.
    kept = apply_tgl_config(cfg, path, command_line_keep(["schedule=chronological"], None))
    assert kept.schedule == {"name": "chronological"}
    with pytest.raises(ConfigError, match="tgl_config and model= both choose the model"):
        command_line_keep(["model=tgat"], None)
    assert to_yaml(path).startswith("# @package _global_\n")
    assert yaml.safe_load(to_yaml(path))["schedule"]["reorder"] == 8


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("    neighbor:", "    neighbour:"),
     "TGN.yml: sampling: unknown option 'neighbour' (did you mean 'neighbor'?)"),
    (lambda t: t.replace("gnn:\n", "gnn:\n  - arch: 'identity'\n"),
     "TGN.yml: section 'gnn' must be a list of one mapping (TGL's format), got 2 entries"),
    (lambda t: t + "optimizer:\n  - name: adam\n",
     "TGN.yml: top level: unknown option 'optimizer'"),
    (lambda t: t.replace("  - epoch: 100", "  - epochs: 100"),
     "TGN.yml: train: unknown option 'epochs' (did you mean 'epoch'?)"),
    (lambda t: t + "gnn: [\n", "TGN.yml: not valid YAML"),
])
def test_bad_tgl_files_name_file_and_option(edit, needle, tmp_path):
    path = _write(tmp_path, "TGN", edit(TGL_FILES["TGN"]))
    with pytest.raises(ConfigError) as info:
        read_tgl_config(path)
    assert needle in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        read_tgl_config(tmp_path / "missing.yml")


def test_run_trains_from_a_tgl_file(tmp_path, tmp_path_factory):
    """``python -m pyg_tgl.run tgl_config=JODIE.yml``: the file's model and options, the
    command line over them, a run directory named after the file."""
    base = tmp_path_factory.getbasetemp()
    text = TGL_FILES["JODIE"].replace("    lr: 0.0001\n", "    lr: 0.0001\n    reorder: 4\n")
    path = _write(tmp_path, "JODIE", text)
    run_cli(["-m", "pyg_tgl.run", "quiet=true", f"tgl_config={path}", "train.epoch=1",
             "train.max_events=1200", "eval.num_negatives=2", "train.batch_size=200"],
            tmp_path, base / "pyg_tgl_data")
    (run_dir,) = (tmp_path / "outputs").glob("jodie_collegemsg/*")
    cfg = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    # The file's keys, every other option at the schema's default (not the model group's).
    assert cfg["model"]["name"] == "jodie" and cfg["model"]["gnn"] == {
        **dataclasses.asdict(GnnConfig()), "arch": "identity", "time_transform": "JODIE"}
    assert (cfg["train"]["epoch"], cfg["train"]["batch_size"]) == (1, 200)  # command line
    assert cfg["train"]["dropout"] == 0.1  # the file
    assert cfg["schedule"] == {"name": "random_chunk", "reorder": 4, "variant": "tgl"}
    assert json.loads((run_dir / "metrics.json").read_text())["finished"] is True
    shown = run_cli(["-m", "pyg_tgl.run", f"tgl_config={path}", "--cfg", "job"], tmp_path,
                    base / "pyg_tgl_data")
    assert f"tgl_config: {path}" in shown.stdout
    bad = run_cli(["-m", "pyg_tgl.run", "quiet=true", f"tgl_config={path}", "model=tgn",
                   f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path, base / "pyg_tgl_data",
                  check=False)
    assert bad.returncode == 2
    assert bad.stderr == "error: tgl_config and model= both choose the model; give one of them\n"
