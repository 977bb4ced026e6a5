"""The configuration schema (pyg_tgl/config/): every option defined once as a typed dataclass
field registered with Hydra, YAML files that only set values, one-line errors from the schema
(with the closest known option), the generated options table, the ``features`` group over any
model, the default run (``preset=best``), and the previous layout's options, run directories and
checkpoints read through the schema's defaults."""
from __future__ import annotations

import copy
import dataclasses
import json
import typing
from pathlib import Path

import pytest
import yaml

from pyg_tgl.config import ConfigError, KINDS, RunConfig, check_config, compose, with_defaults
from pyg_tgl.config.data import DATASETS, DataCommon
from pyg_tgl.config.docs import document
from pyg_tgl.config.fields import hints, is_section
from pyg_tgl.config.recipe import best_note, with_default_preset

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
MODELS = ("jodie", "dysat", "tgat", "tgn", "apan")
#: ``python -m pyg_tgl.run model=<name>`` as main composed it before the schema.
PREVIOUS = json.loads((Path(__file__).parent / "data" /
                       "previous_layout_configs.json").read_text())["configs"]


def _classes():
    """Every schema dataclass, with the dotted prefix of its options."""
    seen = []

    def walk(cls, prefix):
        seen.append((cls, prefix))
        types = hints(cls)
        for f in dataclasses.fields(cls):
            if is_section(f):
                walk(types[f.name], f"{prefix}{f.name}.")
    walk(RunConfig, "")
    for section, kind in KINDS.items():
        for cls in kind.classes.values():
            walk(cls, f"{section}.")
    return seen


def _leaves(node, prefix=""):
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out = {}
    for key, value in node.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return out


# ------------------------------------------------------------------------------------------------
# One definition per option
# ------------------------------------------------------------------------------------------------

def test_the_schema_is_registered_with_hydra():
    from hydra.core.config_store import ConfigStore
    repo = ConfigStore.instance().repo["schema"]
    assert "run.yaml" in repo
    assert set(repo["model"]) == {"temporal.yaml", "edgebank.yaml"}
    assert {n[:-len(".yaml")] for n in repo["data"]} == set(DATASETS)
    assert repo["run.yaml"].node.train.epoch == 100  # the dataclass's default


def test_every_option_has_a_type_a_default_and_one_line_of_doc():
    simple = {bool, int, float, str}
    for cls, prefix in _classes():
        types = hints(cls)
        for f in dataclasses.fields(cls):
            name = f"{prefix}{f.name}"
            doc = f.metadata.get("doc")
            assert doc and "\n" not in doc, name
            if is_section(f) or (cls is RunConfig and f.name in KINDS):
                continue  # a section (one chosen by its name: KINDS)
            kind = types[f.name]
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            assert kind in simple or kind is typing.Any or (
                typing.get_origin(kind) is typing.Union and len(args) == 1 and
                args[0] in simple), (name, kind)
            if kind is typing.Any and f.metadata.get("choices") is None:
                assert f.metadata.get("check") is not None, f"{name}: Any needs a check"
            assert f.default is not dataclasses.MISSING or \
                f.default_factory is not dataclasses.MISSING, name


def test_yaml_files_set_values_of_the_schema_only():
    """Every group file composes (each key it sets is an option) and documents nothing the
    schema defines: no option of a model file lacks from the schema, no data file repeats the
    options every data set shares."""
    for group in ("model", "data", "task", "schedule", "hardware", "features", "preset",
                  "train", "eval"):
        for path in sorted((CONF / group).glob("*.yaml")):
            base = [] if group == "model" else ["model=tgn"]
            if path.stem == "cuda":  # composes here too; CUDA itself is checked at run time
                base.append("hardware.device=auto")
            compose([*base, f"{group}={path.stem}"])  # raises naming the file's bad key
    common = {f.name for f in dataclasses.fields(DataCommon)} - {"name"}
    for path in sorted((CONF / "data").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert not common & set(data), (path.name, sorted(common & set(data)))
        assert data["defaults"][0] == {"optional /schema/data@_here_": data["name"]}, path.name


def test_the_data_options_of_every_data_set_are_the_schema_s():
    from pyg_tgl.data.registry import dataset_options
    from pyg_tgl.data.spec import COMMON_OPTIONS
    assert COMMON_OPTIONS == {f.name: f.default for f in dataclasses.fields(DataCommon)
                              if f.name != "name"}
    for name, cls in DATASETS.items():
        schema = {f.name: (f.default if f.default is not dataclasses.MISSING
                           else f.default_factory()) for f in dataclasses.fields(cls)}
        schema.pop("name")
        assert dataset_options(name) == schema, name


def test_the_options_table_is_generated_from_the_schema():
    text = (REPO / "docs" / "options.md").read_text()
    assert text == document(), (
        "docs/options.md is stale: regenerate it with "
        "`python -m pyg_tgl.config.docs > docs/options.md`")
    assert "| `train.epoch` | `100` | an integer >= 1 |" in text
    assert "| `model.gnn.pair_history` | `false` | true or false |" in text


# ------------------------------------------------------------------------------------------------
# Errors from the schema
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    (["model=tgn", "train.epochs=3"],
     "unknown option 'train.epochs' (did you mean 'train.epoch'?)"),
    (["model=tgn", "+train.memory_carry=true"],
     "unknown option 'train.memory_carry' (did you mean 'eval.memory_carry'?)"),
    (["model=tgn", "model.memory.dim_ot=10"],
     "unknown option 'model.memory.dim_ot' (did you mean 'model.memory.dim_out'?)"),
    (["data=csv", "data.pth=x.csv"], "unknown option 'data.pth' (did you mean 'data.path'?)"),
    (["model=edgebank", "model.gnn.pair_history=true"],
     "unknown option 'model.gnn.pair_history'; 'model.gnn' of model=edgebank"),
    (["model=tgn", "eval.memory_carry=1"], "eval.memory_carry=1: expected true or false"),
    (["model=tgn", "train.epoch=1.5"], "train.epoch=1.5: expected an integer >= 1"),
    (["model=tgn", "train.lr=fast"], "train.lr='fast': expected a finite number > 0.0"),
    (["model=tgn", "model.gnn.arch=gat"],
     "model.gnn.arch='gat' is not supported; allowed values: ['transformer_attention', "
     "'identity']"),
    (["model=tgn", "model.memory.dim_out=0"], "model.memory.dim_out=0: expected an integer >= 1"),
])
def test_the_command_line_is_checked_against_the_schema(overrides, message):
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_configuration_from_python_is_read_through_the_schema():
    cfg = check_config({"model": {"name": "tgn", "memory": {"type": "node"}},
                        "train": {"epoch": 2}})
    assert cfg.train.epoch == 2 and cfg.train.batch_size == 600  # the default
    assert cfg.model.sampling.root_time == "event" and cfg.data.name == "collegemsg"
    for options, message in [
            ({"model": {"name": "tgn"}, "train": {"epochs": 2}},
             "unknown option 'train.epochs' (did you mean 'train.epoch'?)"),
            ({"model": {"name": "tgn"}, "train": {"batch_size": "600"}},
             "train.batch_size='600': expected an integer >= 1"),
            ({"model": {"name": "tgn"}, "data": {"name": "wikii"}},
             "data.name='wikii' is not supported; allowed values: ['collegemsg'"),
            ({"train": {}}, "model is not set")]:
        with pytest.raises(ConfigError) as e:
            check_config(options)
        assert message in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------
# Pair features: a group over any model
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_the_features_group_is_the_old_spelling(model):
    """``features=pair`` / ``features=pair_history`` compose exactly what the options spelt out
    compose (the spelling of experiments/reference_results.py), for any model."""
    spelt = {"pair": ["model.gnn.pair_features=true"],
             "pair_history": ["model.gnn.pair_features=true", "model.gnn.pair_history=true",
                              "model.gnn.pair_history_nodes=true"],
             "none": []}
    if model == "apan":  # TGL's APAN samples no neighbourhoods for the negatives
        base = [f"model={model}", "model.sampling.no_neg=false"]
    else:
        base = [f"model={model}"]
    for features, options in spelt.items():
        assert compose([*base, f"features={features}"]) == compose([*base, *options])
    plain = compose(base).model.gnn
    assert not any(plain[k] for k in plain if k.startswith("pair_"))


# ------------------------------------------------------------------------------------------------
# The default run
# ------------------------------------------------------------------------------------------------

def test_no_model_on_the_command_line_trains_the_best_documented_configuration():
    default = compose([])
    assert default == compose(["preset=best"]) == compose(["preset=best", "model=tgn"])
    assert default.model.name == "tgn" and default.train.batch_size == 200
    assert default.train.epoch == 5 and default.data.name == "collegemsg"
    gnn = default.model.gnn
    assert gnn.pair_features and gnn.pair_history and gnn.pair_history_nodes
    assert with_default_preset(["train.epoch=1"]) == ["preset=best", "train.epoch=1"]
    assert with_default_preset(["--cfg", "job"]) == ["--cfg", "job", "preset=best"]
    for argv in (["model=tgn"], ["-m", "model=tgn,tgat"], ["tgl_config=TGN.yml"],
                 ["preset=quick"], ["+model=tgn"]):
        assert with_default_preset(argv) == argv


def test_model_tgn_is_tgn_exactly_as_tgl_configures_it():
    """Every option of ``model=<name>`` has the value it had before the schema (the previous
    layout, recorded from main); the schema only adds options, at defaults that train what
    was trained without them."""
    for name, previous in PREVIOUS.items():
        now = _leaves(json.loads(json.dumps(
            __import__("omegaconf").OmegaConf.to_container(compose([f"model={name}"])))))
        for key, value in _leaves(previous).items():
            assert key in now, (name, key)
            assert now[key] == value, (name, key, value, now[key])
    tgn = compose(["model=tgn"])
    assert (tgn.train.batch_size, tgn.train.epoch) == (600, 5)
    assert not tgn.model.gnn.pair_features and not tgn.model.gnn.pair_history


def test_the_default_run_says_what_it_trains_and_how_to_get_tgl_s_tgn():
    note = best_note("best", "tgn", ["train.epoch=1"])
    assert "\n" not in note and "features=pair_history" in note
    assert "`model=tgn`" in note and "exactly as TGL configures it" in note
    assert best_note("quick", "tgn", ["model=tgn"]) is None


def test_old_command_lines_keep_working():
    assert compose(["model=tgn", "train=default", "eval=default"]) == compose(["model=tgn"])
    assert compose(["model=tgn", "+data.time_shift=true"]) == compose(["model=tgn"])


# ------------------------------------------------------------------------------------------------
# The previous layout's checkpoints and run directories
# ------------------------------------------------------------------------------------------------

def _without(config, *paths):
    config = copy.deepcopy(config)
    for path in paths:
        *parents, leaf = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node.pop(leaf)
    return config


def test_a_checkpoint_of_the_previous_layout_resumes():
    """``state["config"]`` of a checkpoint written before the schema (main's options, and older
    still: written before root_time and the optimisation options existed) is the run of today's
    configuration, and a changed option is named."""
    from pyg_tgl.train.resume import check_same_run, comparable_config
    from omegaconf import OmegaConf
    for name in MODELS:
        saved = comparable_config(OmegaConf.create(PREVIOUS[name]))
        check_same_run(saved, compose([f"model={name}"]), True)
    older = _without(comparable_config(OmegaConf.create(PREVIOUS["tgn"])),
                     "model.sampling.root_time", "train.optimizer",
                     "train.weight_decay", "train.grad_clip", "train.lr_schedule")
    check_same_run(older, compose(["model=tgn"]), True)
    with pytest.raises(ConfigError, match=r"different options \(train.lr\)"):
        check_same_run(older, compose(["model=tgn", "train.lr=0.001"]), True)
    with pytest.raises(ConfigError, match=r"different options \(model.gnn.pair_features"):
        check_same_run(older, compose(["model=tgn", "features=pair"]), True)


def test_a_run_configuration_of_the_previous_layout_reads_with_the_schema_s_defaults():
    previous = PREVIOUS["tgn"]
    filled = with_defaults(previous)
    assert filled["model"]["memory"]["storage_dtype"] is None
    assert filled["model"]["gnn"]["pair_history_nodes"] is False
    assert filled["logger_options"]["csv"] == {"filename": "metrics.csv"}
    # Nothing it had changes, and the result is a valid configuration.
    assert all(_leaves(filled)[k] == v for k, v in _leaves(previous).items())
    check_config(filled)
