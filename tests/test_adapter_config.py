"""The adapter's rules, each from its one home: the method table (registry), the typed `adapter:`
section (flat YAML keys into the method / allocation / FAIG sections), the extras a config trains
(Method.trained_extras), per-layer ranks as {layer path: rank}, and each method's fine-tuning hook."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colora import cli
from colora.adapters import (METHOD_NAMES, METHODS, AdapterOpt, MethodOpt, adapter_options, attach_adapter,
                             get_hub, get_method)
from colora.adapters.base import Preparation, TaskRun, adaptable_layers, delta_specs
from colora.archs import build_arch
from colora.errors import AdapterError, ColoraError, OptionsError
from colora.options import dump_options, load_options
from colora.tuning.compare import compare
from tests.conftest import TINY_NAFNET

ROOT = Path(__file__).resolve().parents[1]
FINETUNE_PRESETS = sorted((ROOT / "colora" / "presets" / "finetune").glob("*.yml"))
SHIPPED = sorted((ROOT / "colora" / "weights" / "adapters").glob("*/adapter_config.json"))


def tiny():
    torch.manual_seed(0)
    return build_arch(TINY_NAFNET).eval()


# ---- the method table ----------------------------------------------------------------------------
def test_every_listed_method_has_its_class_and_nothing_else_is_registered():
    assert set(METHODS) == set(METHOD_NAMES) and len(METHOD_NAMES) == len(set(METHOD_NAMES))
    for name in METHOD_NAMES:
        method = get_method(name)
        assert type(method) is METHODS[name] and method.name == name
    with pytest.raises(AdapterError, match="unknown adapter method 'lorax'; choose one of: colora, lora"):
        get_method("lorax")


def test_the_method_lists_elsewhere_come_from_the_table():
    from benchmarks import adapter_speed, paper_ablation

    compare_args = cli.build_parser().parse_args(["compare", "-opt", "x.yml"])
    assert compare_args.methods == ",".join(METHOD_NAMES)
    assert list(adapter_speed.METHODS) == list(METHOD_NAMES)
    assert sorted(paper_ablation.METHODS) == sorted(METHOD_NAMES)
    assert paper_ablation.METHODS[:4] == ("full", "decoder", "lora", "colora")  # the paper's rows first
    assert AdapterOpt.CHOICES["method"] == METHOD_NAMES
    with pytest.raises(ColoraError, match="unknown method 'nope'; choose from: " + ", ".join(METHOD_NAMES)):
        compare(ROOT / "colora" / "presets" / "finetune" / "noise.yml", ["colora", "nope"])


def test_options_and_the_method_table_load_without_torch():
    """The table and the typed section are plain data: `colora compare --help`, or loading an
    options file, need not import torch (seconds on a busy machine)."""
    code = ("import sys\nfrom colora.options import load_options\n"
            "a = load_options({'adapter': {'method': 'sct', 'sct_channels': 4}}).adapter\n"
            "from colora.adapters.registry import METHOD_NAMES\n"
            "assert a.settings.sct_channels == 4 and 'sct' in METHOD_NAMES\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr


# ---- the typed section ---------------------------------------------------------------------------
def test_flat_keys_fill_the_typed_sections_and_come_back_flat():
    raw = {"method": "lora", "task": "rain", "rank": 4, "target": ["decoder"], "train_norm": True,
           "budget": 0.1, "match_budget": True, "faig_steps": 3, "faig_profile": "p.json"}
    a = load_options({"adapter": raw}).adapter
    assert (a.method, a.task, a.name) == ("lora", "rain", None)
    assert isinstance(a.settings, MethodOpt)
    assert (a.settings.rank, a.settings.target, a.settings.train_norm) == (4, ["decoder"], True)
    assert (a.allocation.budget, a.allocation.match_budget) == (0.1, True)
    assert (a.faig.faig_steps, a.faig.faig_profile, a.faig.faig_images) == (3, "p.json", 8)
    flat = a.to_dict()
    assert {k: flat[k] for k in raw} == raw and set(flat) == set(AdapterOpt().to_dict())
    assert not any(isinstance(v, dict) and k != "rank_pattern" for k, v in flat.items())  # no nesting
    assert adapter_options(flat) == a


@pytest.mark.parametrize("raw, message", [
    ({"settings": {"rank": 4}}, "unknown key 'settings' in adapter"),  # the sections are not YAML keys
    ({"rnak": 4}, "unknown key 'rnak' in adapter; did you mean 'rank'?"),
    ({"faig_step": 4}, "did you mean 'faig_steps'?"),
    ({"rank": -1}, "adapter.rank must be between 0 and 4096, got -1"),
    ({"faig_steps": "x"}, "adapter.faig_steps must be an integer"),
    ({"budget": 0}, "adapter.budget must be between 0 and 1 (a fraction of the base), got 0"),
    ({"method": "colora", "match_budget": True}, "adapter.match_budget picks a uniform LoRA rank"),
])
def test_section_errors_name_the_flat_key(raw, message):
    with pytest.raises(OptionsError) as err:
        load_options({"adapter": raw})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("preset", FINETUNE_PRESETS, ids=lambda p: p.stem)
def test_finetune_presets_load_and_their_dump_reloads(preset, tmp_path):
    import yaml

    opts = load_options(preset)
    written = yaml.safe_load(preset.read_text())["adapter"]
    assert {k: opts.adapter.to_dict()[k] for k in written} == written
    (tmp_path / "resolved.yml").write_text(dump_options(opts))
    assert load_options(tmp_path / "resolved.yml") == opts


@pytest.mark.skipif(not SHIPPED, reason="no shipped adapters")
@pytest.mark.parametrize("config_path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_adapter_settings_still_rebuild_their_layers(config_path):
    """The settings a shipped adapter recorded (flat keys; its CoLoRA ranks as the {path: rank}
    `allocation`, or, in adapters written before it, as `^path$` rank_pattern regexes) load as an
    `adapter:` section and give the same layers."""
    config = json.loads(config_path.read_text())
    opt = adapter_options({"method": config["method"], **config["settings"]})
    arch = dict(config["base_arch"])
    model = build_arch({"type": arch.pop("type"), **arch})
    attach_adapter(model, opt, name="again", ranks=config.get("allocation"))
    assert get_hub(model).configs["again"]["layers"] == config["layers"]


# ---- the extras ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["colora", "lora", "svdiff", "difffit"])
@pytest.mark.parametrize("flags", [{}, {"train_bias": False}, {"train_norm": False, "train_layer_scale": True},
                                   {"train_bias": True, "train_depthwise": True}])
def test_the_delta_tuners_an_adapter_gets_are_the_extras_its_method_decides(method, flags):
    model = tiny()
    attach_adapter(model, {"method": method, **flags}, name="t")
    layers = get_hub(model).configs["t"]["layers"]
    deltas = {path: spec["params"] for path, specs in layers.items() for spec in specs if spec["kind"] == "delta"}
    m = get_method(method)
    extras = m.trained_extras(MethodOpt(**flags))
    assert deltas == {path: specs[0]["params"] for path, specs in delta_specs(model, extras).items()}
    assert m.extra_params(model, MethodOpt(**flags)) == sum(
        getattr(dict(model.named_modules())[path], p).numel() for path, ps in deltas.items() for p in ps)


def test_the_method_defaults_for_extras():
    unset = MethodOpt()
    assert get_method("colora").trained_extras(unset) == {"bias", "norm", "scale"}  # the paper's FAIG finding
    assert get_method("lora").trained_extras(unset) == set()
    assert get_method("difffit").trained_extras(unset) == {"norm"}
    assert get_method("difffit").trained_extras(MethodOpt(train_norm=False, train_bias=True)) == set()
    assert all(get_method(m).trained_extras(MethodOpt(train_bias=True)) == set() for m in ("sct", "bitfit", "full"))


# ---- ranks as {layer path: rank} -----------------------------------------------------------------
def test_ranks_by_path_override_rank_and_rank_pattern_exactly():
    model = tiny()
    paths = adaptable_layers(model)
    ranks = {paths[0]: 0, paths[1]: 3, paths[2]: 1}
    attach_adapter(model, {"method": "lora", "rank": 2, "rank_pattern": {paths[1]: 5}}, name="t", ranks=ranks)
    got = {path: spec["rank"] for path, specs in get_hub(model).configs["t"]["layers"].items()
           for spec in specs if spec["kind"] == "lora"}
    assert paths[0] not in got and got[paths[1]] == 3 and got[paths[2]] == 1
    assert all(got[p] == 2 for p in paths[3:])


def test_bad_ranks_are_one_line_errors_and_leave_the_model_as_it_was():
    model = tiny()
    with pytest.raises(AdapterError, match=r"ranks name 'encoders\.0\.0\.conv9', which is not among the adapted") as err:
        attach_adapter(model, {"method": "colora"}, ranks={"encoders.0.0.conv9": 2})
    assert "\n" not in str(err.value) and not hasattr(model, "colora_adapters")
    with pytest.raises(AdapterError, match="'svdiff' has no LoRA ranks"):
        attach_adapter(model, {"method": "svdiff"}, ranks={adaptable_layers(model)[0]: 2})


# ---- each method's fine-tuning hook --------------------------------------------------------------
class FakeRun(TaskRun):
    """What a fine-tuning run offers the hooks, with the calls recorded."""

    def __init__(self, adapter):
        self.model, self.adapter, self.calls = tiny(), adapter, []

    def inputs(self, count):
        self.calls.append(("inputs", count))
        return [torch.rand(1, 3, 32, 32)]

    def allocate_ranks(self, extra):
        self.calls.append(("allocate_ranks", extra))
        return {adaptable_layers(self.model)[0]: 3}, [{"name": adaptable_layers(self.model)[0], "rank": 3}]

    def uniform_rank(self, extra):
        self.calls.append(("uniform_rank", extra))
        return 5


def test_colora_prepares_ranks_from_the_allocation_counting_its_extras():
    run = FakeRun(adapter_options({"method": "colora", "train_norm": False}))
    prepared = get_method("colora").prepare(run)
    extra = get_method("colora").extra_params(run.model, run.adapter.settings)
    assert run.calls == [("allocate_ranks", extra)] and extra > 0
    assert prepared.ranks == {adaptable_layers(run.model)[0]: 3} and prepared.table and prepared.adapter == run.adapter


def test_lora_takes_the_budget_filling_rank_only_with_match_budget():
    run = FakeRun(adapter_options({"method": "lora", "rank": 8, "match_budget": True, "train_bias": True}))
    prepared = get_method("lora").prepare(run)
    assert run.calls == [("uniform_rank", get_method("lora").extra_params(run.model, run.adapter.settings))]
    assert prepared.adapter.settings.rank == 5 and run.adapter.settings.rank == 8  # a new config, not an edit
    assert prepared.adapter == dataclasses.replace(run.adapter, settings=dataclasses.replace(run.adapter.settings, rank=5))
    plain = FakeRun(adapter_options({"method": "lora"}))
    assert get_method("lora").prepare(plain) == Preparation(plain.adapter) and plain.calls == []


def test_sct_prepares_calibration_images_and_the_others_nothing():
    run = FakeRun(adapter_options({"method": "sct"}))
    prepared = get_method("sct").prepare(run)
    assert run.calls == [("inputs", 8)] and len(prepared.calib) == 1
    for name in ("svdiff", "difffit", "bitfit", "decoder", "full"):
        run = FakeRun(adapter_options({"method": name}))
        assert get_method(name).prepare(run) == Preparation(run.adapter) and run.calls == []
