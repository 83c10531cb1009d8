"""`--adapter auto` (issue 14): the decision rules, the blend of adapters, and the command line.

A tiny NAFNet with two LoRA adapters whose deltas are random (so each visibly changes the output),
recorded as the "noise" and "haze" tasks, and estimators rigged to see a chosen degradation (zero
weights, the head's bias = the logits we want): the choice is then known, so every test can fail.
"""
import json

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from colora.adapters import attach_adapter, blend_adapters, load_adapter, merge_adapter, save_adapter, set_adapter
from colora.adapters import trainable_parameters
from colora.archs import build_arch
from colora.checkpoint import save_checkpoint
from colora.errors import AdapterError, ColoraError
from colora.inference.auto import AutoAdapters, decide, summary
from colora.inference.estimator import LABELS, DegradationEstimator, save_estimator
from colora.inference.restorer import Restorer, load_model
from colora.imageio import write_image
from tests.conftest import TINY_NAFNET, randomize_layer_scales
from tests.test_restore import cli

EST = dict.fromkeys(LABELS, 0.05) | {"severity": 30.0}
BOTH = {"noise": "noise", "haze": "haze"}


def photo():
    return np.ascontiguousarray(skimage_data.astronaut()[100:164, 150:230])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_layer_scales(build_arch(TINY_NAFNET))
    path = tmp_path_factory.mktemp("auto") / "base.safetensors"
    save_checkpoint(path, model.state_dict(), network_g=TINY_NAFNET)
    return path


@pytest.fixture(scope="module")
def adapter_dir(base, tmp_path_factory):
    """Two LoRA adapters on the base, tasks noise and haze, with random (non-zero) deltas."""
    folder = tmp_path_factory.mktemp("auto_adapters")
    for seed, task in enumerate(("noise", "haze")):
        model = load_model(base)
        attach_adapter(model, {"method": "lora", "rank": 2, "task": task}, name=task)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in trainable_parameters(model):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        save_adapter(model, folder / task)
    return folder


def rigged(tmp_path, **probs):
    """An estimator file that sees `probs` (label -> probability) in every image."""
    model = DegradationEstimator(8)
    logits = [float(np.log(p / (1 - p))) for p in (probs.get(k, 0.02) for k in LABELS)]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head.bias.copy_(torch.tensor(logits + [0.0]))
    path = tmp_path / ("est_" + "_".join(sorted(probs)) + ".safetensors")
    save_estimator(model, path)
    return path


# ---- the rules -----------------------------------------------------------------------------------
def test_decide_leaves_clean_photos_and_orders_chains():
    assert decide(EST | {"clean": 0.9}, BOTH).action == "leave"
    assert decide(EST, BOTH).action == "leave"  # nothing detected
    one = decide(EST | {"haze": 0.9}, BOTH)
    assert (one.action, one.adapters) == ("one", ("haze",))
    chain = decide(EST | {"haze": 0.9, "noise": 0.7}, BOTH)
    assert (chain.action, chain.adapters) == ("chain", ("noise", "haze"))  # noise first, haze last
    blend = decide(EST | {"haze": 0.9, "noise": 0.7}, BOTH, mixture="blend")
    assert (blend.action, blend.adapters, blend.weights) == ("blend", ("noise", "haze"), (0.7, 0.9))


def test_decide_reports_missing_adapters_and_splits_rain_with_drops():
    c = decide(EST | {"rain": 0.8, "haze": 0.9}, BOTH)
    assert (c.action, c.adapters, c.missing) == ("one", ("haze",), ("rain",))
    assert "no adapter for rain" in summary(c.as_dict())
    drops = {"rain": "r", "raindrop": "d"}
    assert decide(EST | {"rain": 0.8, "raindrop": 0.7}, drops).adapters == ("d", "r")
    assert decide(EST | {"rain": 0.8, "raindrop": 0.7}, drops | {"rain_raindrop": "rd"}).adapters == ("rd",)
    with pytest.raises(ColoraError, match="mixture"):
        decide(EST, BOTH, mixture="average")


# ---- the blend -----------------------------------------------------------------------------------
def test_blend_weights_one_and_zero_equal_the_first_adapter_and_a_swap_undoes_it(base, adapter_dir):
    model = load_model(base)
    for task in ("noise", "haze"):
        load_adapter(model, adapter_dir / task)
    merge_adapter(model)
    x = torch.from_numpy(photo()).permute(2, 0, 1)[None].float() / 255
    outs = {}
    with torch.inference_mode():
        for name in (None, "noise", "haze"):
            set_adapter(model, name)
            outs[name] = model(x)
        blend_adapters(model, {"noise": 1.0, "haze": 0.0})
        first = model(x)
        blend_adapters(model, {"noise": 0.5, "haze": 0.5})
        half = model(x)
        set_adapter(model, "haze")
        again = model(x)
    assert torch.allclose(first, outs["noise"], atol=1e-5)
    assert not torch.allclose(half, outs["noise"], atol=1e-3) and not torch.allclose(half, outs["haze"], atol=1e-3)
    assert torch.equal(again, outs["haze"])  # the blend is gone after a swap, bit for bit
    with pytest.raises(AdapterError, match="no adapter named"):
        blend_adapters(model, {"rain": 1.0})


# ---- the restorer and the command line -----------------------------------------------------------
def test_auto_returns_a_photo_it_finds_clean_untouched(base, adapter_dir, tmp_path):
    r = Restorer.from_files(base, "auto", adapter_dir=adapter_dir, estimator=rigged(tmp_path, clean=0.95))
    img = photo()
    assert np.array_equal(r.restore(img), img) and r.last_choice.action == "leave"
    plain = Restorer.from_files(base)  # the base alone would change it
    assert not np.array_equal(plain.restore(img), img)


def test_auto_runs_the_chain_it_names(base, adapter_dir, tmp_path):
    img = photo()
    auto = Restorer.from_files(base, ["auto"], adapter_dir=adapter_dir,
                               estimator=rigged(tmp_path, noise=0.9, haze=0.8))
    manual = Restorer.from_files(base, [adapter_dir / "noise", adapter_dir / "haze"])
    reverse = Restorer.from_files(base, [adapter_dir / "haze", adapter_dir / "noise"])
    out = auto.restore(img)
    assert auto.last_choice.adapters == ("noise", "haze")
    assert np.abs(out.astype(int) - manual.restore(img)).max() <= 1  # the same chain
    assert np.abs(out.astype(int) - reverse.restore(img)).max() > 8  # not the other order


def test_auto_recheck_looks_again_after_each_adapter_and_runs_each_once(base, adapter_dir, tmp_path, monkeypatch):
    """Blur under noise: the first look sees only noise; once it is gone the second sees the rest."""
    import colora.inference.estimator as estimator

    looks = iter([EST | {"noise": 0.9}, EST | {"noise": 0.9, "haze": 0.8}, EST | {"noise": 0.9, "haze": 0.8}])
    monkeypatch.setattr(estimator, "estimate", lambda *a, **k: next(looks))
    img = photo()
    auto = Restorer.from_files(base, "auto", adapter_dir=adapter_dir, estimator=rigged(tmp_path, noise=0.9),
                               auto_mixture="recheck")
    out = auto.restore(img)
    choice = auto.last_choice
    assert (choice.action, choice.adapters, choice.detected) == ("chain", ("noise", "haze"), ("noise",))
    assert len(choice.rechecks) == 2 and json.dumps(choice.as_dict())  # noise is not run twice
    manual = Restorer.from_files(base, [adapter_dir / "noise", adapter_dir / "haze"])
    assert np.abs(out.astype(int) - manual.restore(img)).max() <= 1


def test_auto_bad_settings_are_one_line_errors(base, adapter_dir, tmp_path):
    with pytest.raises(AdapterError, match="alone"):
        Restorer.from_files(base, ["auto", "noise"], adapter_dir=adapter_dir)
    with pytest.raises(AdapterError, match="no adapter folder"):
        Restorer.from_files(base, "auto", adapter_dir=tmp_path)
    with pytest.raises(ColoraError, match="threshold"):
        AutoAdapters(None, BOTH, threshold=1.5)


def test_cli_auto_explain_names_each_images_choice(base, adapter_dir, tmp_path):
    src = tmp_path / "in"
    write_image(src / "a.png", photo().astype(np.float32) / 255)
    write_image(src / "b.png", photo()[::-1].astype(np.float32) / 255)
    explain = tmp_path / "explain.json"
    args = ["restore", "-i", src, "-o", tmp_path / "out", "--model", base, "--adapter", "auto",
            "--adapter-dir", adapter_dir, "--estimator", rigged(tmp_path, haze=0.9), "--explain", explain]
    code, out, err = cli(*args)
    assert code == 0, err
    doc = json.loads(explain.read_text())
    assert [Path_name(i["input"]) for i in doc["images"]] == ["a.png", "b.png"]
    assert all(i["choice"]["action"] == "one" and i["choice"]["adapters"] == ["haze"] for i in doc["images"])
    assert doc["adapters"] == BOTH and "detected haze: adapter haze" in err + out
    code, out, err = cli(*args)  # the explain file of the last run is not replaced without --overwrite
    assert code == 2 and "--explain" in err and "exists" in err and "Traceback" not in err
    code, out, err = cli("restore", "-i", src, "-o", tmp_path / "o2", "--model", base, "--explain", tmp_path / "x.json")
    assert code == 2 and "--adapter auto" in err


def Path_name(p):
    from pathlib import Path

    return Path(p).name
