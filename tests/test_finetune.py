"""FAIG scores, CoLoRA rank allocation, and `colora finetune` / `faig` / `compare` end to end.

FAIG and the allocation are checked in this process on NAFNet (the tiny one of conftest, and the
width-16 4-level one of the presets for the budget). The commands run on a tiny NAFNet whose base
checkpoint is made here (layer scales randomised, so the base is poor at denoising and an adapter
has something to gain), on pairs synthesised from the bundled photos, for a dozen iterations.

A new Python process costs several seconds of CPU here (importing torch), so only the runs where
the process matters are real `colora ...` subprocesses: one `finetune`, the cells of one `compare`
(each cell is a process by design; the compare itself runs in a thread of this process) and one bad
input. They all start in the background when this module starts and run while the in-process tests
do. The rest call `colora.cli.main`. Everything runs on one thread (OMP_NUM_THREADS=1 /
torch.set_num_threads(1)): faster on a shared 2-core box.
"""
import contextlib
import copy
import csv
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from colora import cli
from colora.tuning import faig
from colora.adapters import MethodOpt, attach_adapter, count_trainable, get_method, load_adapter
from colora.tuning.allocation import allocate_ranks, layer_shapes, uniform_rank
from colora.archs import PART_NAMES, build_arch
from colora.checkpoint import load_checkpoint, save_checkpoint
from colora.tuning.compare import compare
from colora.errors import ColoraError
from tests.conftest import HAS_PLOTS, TINY_NAFNET, plotted, randomize_layer_scales

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
PRESET = ROOT / "colora" / "presets" / "finetune" / "noise.yml"
PRESET_NAFNET = {"type": "NAFNet", "width": 16, "middle_blk_num": 1, "enc_blk_nums": [1, 1, 1, 1],
                 "dec_blk_nums": [1, 1, 1, 1]}
CATEGORIES = {"weight", "depthwise", "bias", "norm", "scale"}
ONE_LAYER = "encoders.1.0.conv4"  # the layer whose weights theta_t changes in the one-layer tests


def extra_params(method, model, **flags):
    """The parameters `method` trains besides its LoRA under these flags (Method.trained_extras)."""
    return get_method(method).extra_params(model, MethodOpt(**flags))


def tiny_sets(root, base):
    """--set overrides that shrink the noise preset to the tiny NAFNet and a dozen iterations."""
    return ["network_g.width=8", "network_g.enc_blk_nums=[1,1]", "network_g.dec_blk_nums=[1,1]",
            f"path.pretrain_network_g={base}", f"path.experiments_root={root}",
            "train.total_iter=12", "train.warmup_iter=0", "val.val_freq=100",
            "adapter.faig_tune_iter=4", "adapter.faig_steps=3", "adapter.faig_images=4",
            "datasets.train.num_pairs=8", "datasets.train.gt_size=32", "datasets.train.batch_size_per_gpu=4",
            "datasets.val.num_samples=3", "datasets.val.gt_size=48"]


def as_args(sets):
    return [a for s in sets for a in ("--set", s)]


def colora_cmd(*args):
    return [sys.executable, "-m", "colora.cli", *map(str, args)]


def colora_main(*argv):
    """`colora ARGV` in this process: (exit code, stdout, stderr). main() points the root logger at
    the redirected stderr: pytest's logging setup is put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(a) for a in argv])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


class Background:
    """A `colora ...` subprocess started now and waited for when a test needs its result."""

    def __init__(self, args, cwd):
        self.proc = subprocess.Popen(colora_cmd(*args), cwd=cwd, env=ENV, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.started, self._result = time.monotonic(), None

    def result(self, timeout=300):
        """(exit code, stdout, stderr, seconds from start to exit)."""
        if self._result is None:
            out, err = self.proc.communicate(timeout=timeout)
            self._result = (self.proc.returncode, out, err, time.monotonic() - self.started)
        return self._result

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Thread:
    """`fn(*args)` in a thread started now: result() waits and returns (value, exception, seconds)."""

    def __init__(self, fn, *args):
        self.value = self.error = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.thread.start()

    def _run(self, fn, args):
        try:
            self.value = fn(*args)
        except BaseException as exc:  # handed to the test that waits
            self.error = exc
        self.seconds = time.monotonic() - self.started

    def result(self, timeout=300):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background compare did not finish"
        return self.value, self.error, self.seconds


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return randomize_layer_scales(build_arch(TINY_NAFNET), seed=seed)


def photo_batches():
    """Two noisy/clean batches cut from a bundled photo (the task pairs FAIG integrates over)."""
    clean = cv2.resize(skimage_data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    gt = torch.from_numpy(clean).permute(2, 0, 1)
    crops = torch.stack([gt[:, y:y + 32, x:x + 32] for y in (0, 32) for x in (0, 32)])
    lq = (crops + 0.1 * torch.randn(crops.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return [(lq[:2], crops[:2]), (lq[2:], crops[2:])]


def with_noise_on(state, key, seed=0, scale=0.05):
    target = {k: v.clone() for k, v in state.items()}
    target[key] = target[key] + scale * torch.randn(target[key].shape, generator=torch.Generator().manual_seed(seed))
    return target


# ---- module fixtures -----------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: a second OpenMP thread only adds sync overhead on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The base checkpoint (tiny NAFNet, random layer scales), a width-16 one that does not fit it,
    a theta_t differing from the base in one layer, and an experiments root."""
    root = tmp_path_factory.mktemp("finetune")
    model = tiny_model()
    base = root / "base.safetensors"
    save_checkpoint(base, model.state_dict(), network_g=TINY_NAFNET)
    wide_net = dict(TINY_NAFNET, width=16)
    wide = root / "wide16.safetensors"
    save_checkpoint(wide, build_arch(wide_net).state_dict(), network_g=wide_net)
    target = root / "theta_t.safetensors"
    state = model.state_dict()
    save_checkpoint(target, with_noise_on(state, f"{ONE_LAYER}.weight"), network_g=TINY_NAFNET)
    # a FAIG profile of the base (theta_t = the one-layer change), where the compare's CoLoRA cell writes its own
    profile = root / "cmp" / "noise_colora_compare" / "colora" / "faig.json"
    profile.parent.mkdir(parents=True)
    theta_t = with_noise_on(state, "middle_blks.0.conv4.weight")
    scores = faig.faig_scores(model, state, theta_t, photo_batches(), steps=2)
    faig.save_profile(profile, faig.layer_table(model, scores), {"task": "noise"})
    return {"root": root, "base": base, "wide": wide, "target": target, "exp": root / "experiments",
            "profile": profile}


def compare_sets(work):
    """4 iterations per method; CoLoRA reuses a saved FAIG profile: the faig.json its own run folder
    holds (a rerun reusing its profile, which once failed with shutil.SameFileError)."""
    return tiny_sets(work["root"] / "cmp", work["base"]) + [
        "train.total_iter=4", "datasets.val.num_samples=2", "datasets.val.gt_size=32",
        f"adapter.faig_profile={work['profile']}"]


@pytest.fixture(autouse=True, scope="module")
def background(work):
    """`colora finetune`, `colora compare` (3 methods) and a bad `colora finetune` on the tiny
    setting, started at once so they run while the in-process tests do; a subprocess a test
    selection never waited for is killed at the end."""
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # for the compare cells (they inherit this environment)
    runs = {
        "finetune": Background(["finetune", "-opt", PRESET, *as_args(tiny_sets(work["exp"], work["base"]))], ROOT),
        "bad": Background(["finetune", "-opt", PRESET, *as_args(
            tiny_sets(work["root"] / "bad", work["base"]) + [f"path.pretrain_network_g={work['wide']}"])], ROOT),
        "compare": Thread(compare, PRESET, ["colora", "lora", "bitfit"], [None], compare_sets(work), lambda msg: None),
    }
    try:
        yield runs
    finally:
        runs["compare"].thread.join(300)
        for name in ("finetune", "bad"):
            runs[name].stop()
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def finetuned(background, work):
    code, out, err, _ = background["finetune"].result()
    assert code == 0, f"colora finetune failed:\n{err[-3000:]}"
    return {"out": out, "err": err, "dir": work["exp"] / "noise_colora"}


@pytest.fixture(scope="module")
def preset_model():
    """The presets' NAFNet (width 16, 4 levels): 55 adaptable layers of 20 shapes."""
    return build_arch(PRESET_NAFNET)


def random_profile(model, seed=0, drop=None):
    rnd = random.Random(seed)
    return [{"name": p, "score": rnd.random() * 10 ** rnd.uniform(-3, 3)} for p in layer_shapes(model) if p != drop]


# ---- FAIG ----------------------------------------------------------------------------------------
def test_faig_scores_are_zero_when_theta_t_is_theta_b():
    model = tiny_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    scores = faig.faig_scores(model, state, state, photo_batches(), steps=3)
    assert set(scores) == {n for n, _ in model.named_parameters()}
    assert all(torch.equal(s, torch.zeros_like(s)) for s in scores.values())
    rows = faig.layer_table(model, scores)
    assert rows and all(r["score"] == 0.0 for r in rows)


@pytest.mark.parametrize("key", [f"{ONE_LAYER}.weight", "middle_blks.0.conv1.weight", "ending.bias",
                                 "decoders.0.0.norm2.weight"])
def test_faig_one_changed_layer_gets_the_only_score(key):
    model = tiny_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    requires = {n: p.requires_grad for n, p in model.named_parameters()}
    model.ending.weight.requires_grad_(False)  # a frozen tensor: FAIG must still score it, then refreeze it
    requires["ending.weight"] = False
    scores = faig.faig_scores(model, base, with_noise_on(base, key), photo_batches(), steps=3)
    rows = faig.layer_table(model, scores)
    layer = key.rsplit(".", 1)[0]
    top = max(rows, key=lambda r: r["score"])
    assert top["name"] == layer and top["score"] > 0
    assert all(r["score"] == 0.0 for r in rows if r["name"] != layer)
    # the model's weights and requires_grad flags are as before
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == requires
    assert all(p.grad is None for p in model.parameters())


def test_faig_scores_are_the_path_integral_of_the_gradient():
    """steps=2: |(g(0.5) + g(1)) / 2 * (theta_t - theta_b)| per entry, computed by hand; non-negative."""
    model = tiny_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    target = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    batches = photo_batches()
    scores = faig.faig_scores(model, base, target, batches, steps=2)
    grads = {}
    for alpha in (0.5, 1.0):
        probe = copy.deepcopy(model)
        probe.load_state_dict({k: base[k] + alpha * (target[k] - base[k]) for k in base})
        probe.eval()
        for lq, gt in batches:
            (probe(lq) - gt).pow(2).sum().backward()
        for n, p in probe.named_parameters():
            grads[n] = grads.get(n, 0) + p.grad
    for n, s in scores.items():
        assert (s >= 0).all()
        expected = (grads[n] / 2 * (target[n] - base[n])).abs()
        torch.testing.assert_close(s, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max() + 1e-12))
    assert sum(float(s.sum()) for s in scores.values()) > 0


@pytest.fixture(scope="module")
def full_profile():
    """A profile where every parameter moved (theta_t = base + noise everywhere)."""
    model = tiny_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    target = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    return model, faig.layer_table(model, faig.faig_scores(model, base, target, photo_batches(), steps=2))


def test_layer_table_parts_blocks_and_categories(full_profile):
    model, rows = full_profile
    names = [r["name"] for r in rows]
    owners = [p for p, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    assert sorted(names) == sorted(owners) and len(names) == len(owners)  # one row per owner
    assert names[0] == "intro" and names[-1] == "ending"  # forward order, like the paper's chart
    assert names.index("middle_blks.0.conv1") < names.index("ups.0.0") < names.index("decoders.0.0.conv1")
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())
    seen = set()
    for r in rows:
        assert r["part"] in PART_NAMES and r["score"] >= 0
        assert set(r["scores"]) <= CATEGORIES and set(r["scores"]) == set(r["counts"])
        assert r["score"] == pytest.approx(sum(r["scores"].values()))
        assert r["params"] == sum(r["counts"].values())
        assert all(v >= 0 for v in r["scores"].values())
        seen |= set(r["scores"])
    assert seen == CATEGORIES  # NAFNet has all five: conv weights, depthwise, biases, LayerNorms, beta/gamma
    by_name = {r["name"]: r for r in rows}
    assert by_name["intro"]["part"] == "intro" and by_name["ending"]["part"] == "ending"
    assert by_name["encoders.0.0.conv1"]["part"] == "encoder"
    assert by_name["middle_blks.0.conv4"]["part"] == "middle"
    assert by_name["decoders.1.0.conv5"]["part"] == "decoder"
    assert set(by_name["encoders.0.0"]["scores"]) == {"scale"}
    assert set(by_name["encoders.0.0.norm1"]["scores"]) == {"norm"}
    assert set(by_name["encoders.0.0.conv2"]["scores"]) == {"depthwise", "bias"}
    # a block's own tensors (NAFNet's beta/gamma) belong to that block, like its convs
    assert by_name["encoders.0.0"]["block"] == by_name["encoders.0.0.conv1"]["block"] == "encoders.0.0"
    assert by_name["middle_blks.0"]["block"] == "middle_blks.0"
    blocks = {b["block"]: b for b in faig.block_table(rows)}
    assert blocks["encoders.1.0"]["params"] == sum(
        p.numel() for p in model.encoders[1][0].parameters())
    assert sum(b["score"] for b in blocks.values()) == pytest.approx(sum(r["score"] for r in rows))


def test_profile_round_trip_and_plot(full_profile, tmp_path):
    _, rows = full_profile
    path = faig.save_profile(tmp_path / "faig.json", rows, {"task": "noise", "steps": 2})
    assert faig.load_profile(path) == rows
    doc = json.loads(Path(path).read_text())
    assert doc["meta"] == {"task": "noise", "steps": 2}
    assert set(doc["categories"]) == CATEGORIES
    assert all(c["per_param"] >= 0 for c in doc["categories"].values())
    assert {b["block"] for b in doc["blocks"]} == {r["block"] for r in rows}
    assert (faig.plot_profile(tmp_path / "faig.png", rows) is not None) == HAS_PLOTS
    assert plotted(tmp_path / "faig.png")
    # all-zero scores (theta_t == theta_b) still plot
    zero = [dict(r, score=0.0) for r in rows]
    faig.plot_profile(tmp_path / "zero.png", zero)
    assert plotted(tmp_path / "zero.png")


def test_load_profile_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ColoraError, match="cannot read FAIG profile"):
        faig.load_profile(bad)
    bad.write_text('{"meta": {}}')
    with pytest.raises(ColoraError, match="cannot read FAIG profile"):
        faig.load_profile(bad)
    with pytest.raises(ColoraError, match="cannot read FAIG profile"):
        faig.load_profile(tmp_path / "missing.json")


# ---- rank allocation -----------------------------------------------------------------------------
BUDGETS = [0.03, 0.07, 0.15]


@pytest.mark.parametrize("budget", BUDGETS)
def test_allocation_meets_the_budget_and_counts_like_the_adapter(preset_model, budget):
    model = copy.deepcopy(preset_model)
    base_params = sum(p.numel() for p in model.parameters())
    shapes = layer_shapes(model)
    ranks, table, total = allocate_ranks(model, random_profile(model), budget, extra_params("colora", model))
    assert abs(total - budget * base_params) <= 0.01 * budget * base_params
    assert set(ranks) == set(shapes) and [r["name"] for r in table] == list(shapes)
    extra = extra_params("colora", model)
    assert total == extra + sum(r["params"] for r in table)
    for r in table:
        d, k = shapes[r["name"]]
        assert 0 <= r["rank"] <= min(d, k) and r["params"] == r["rank"] * (d + k)
        # delta_max = 0.5 caps delta before the rounding to a rank (so the realised fraction may
        # pass it by half a rank at most): r <= round(0.5 d k / (d + k))
        assert r["rank"] <= round(0.5 * d * k / (d + k))
    assert len({r["rank"] for r in table}) > 2  # the scores shape the ranks
    # the adapter CoLoRA attaches with these ranks trains exactly what the allocation counted
    attach_adapter(model, {"method": "colora"}, name="t", ranks=ranks)
    n, pct = count_trainable(model)
    assert n == total
    assert pct == pytest.approx(100 * total / base_params)
    assert abs(pct / 100 - budget) <= 0.01 * budget


@pytest.mark.parametrize("budget", BUDGETS)
def test_uniform_lora_rank_is_the_one_nearest_the_budget(preset_model, budget):
    """`adapter.match_budget`: uniform LoRA at CoLoRA's budget (the paper's equal-budget ablation)."""
    base_params = sum(p.numel() for p in preset_model.parameters())

    def trainable(rank):
        model = copy.deepcopy(preset_model)
        attach_adapter(model, {"method": "lora", "rank": rank}, name="t")
        return count_trainable(model)[0]

    r = uniform_rank(preset_model, budget, extra_params("lora", preset_model))
    gaps = [abs(trainable(q) - budget * base_params) for q in (r - 1, r, r + 1) if q >= 1]
    assert abs(trainable(r) - budget * base_params) == min(gaps)
    assert trainable(r) < trainable(r + 1)  # not clamped flat: the rank still buys parameters


@pytest.mark.parametrize("cfg", [{"train_norm": False}, {"train_bias": False, "train_layer_scale": False},
                                 {"train_depthwise": True}])
def test_allocation_counts_the_extras_each_setting_trains(preset_model, cfg):
    model = copy.deepcopy(preset_model)
    ranks, _, total = allocate_ranks(model, random_profile(model, seed=3), 0.07, extra_params("colora", model, **cfg))
    attach_adapter(model, {"method": "colora", **cfg}, name="t", ranks=ranks)
    assert count_trainable(model)[0] == total
    base_params = sum(p.numel() for p in preset_model.parameters())
    assert abs(total - 0.07 * base_params) <= 0.01 * 0.07 * base_params


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_are_monotone_in_score_among_layers_of_one_shape(preset_model, seed):
    shapes = layer_shapes(preset_model)
    rows = random_profile(preset_model, seed=seed)
    ranks, _, _ = allocate_ranks(preset_model, rows, 0.07, extra_params("colora", preset_model))
    score = {r["name"]: r["score"] for r in rows}
    groups = {}
    for p, shape in shapes.items():
        groups.setdefault(shape, []).append(p)
    compared = 0
    for members in groups.values():
        members.sort(key=lambda p: score[p])
        for lo, hi in zip(members, members[1:]):
            assert ranks[lo] <= ranks[hi], f"{lo} (score {score[lo]:.3g}) outranks {hi} (score {score[hi]:.3g})"
            compared += 1
    assert compared >= 20  # the width-16 NAFNet repeats many shapes: the check is not vacuous


def test_allocation_of_a_flat_profile_meets_the_budget(preset_model):
    """All scores equal (e.g. theta_t == theta_b): every layer gets the same fraction."""
    rows = [{"name": p, "score": 0.0} for p in layer_shapes(preset_model)]
    base_params = sum(p.numel() for p in preset_model.parameters())
    _, table, total = allocate_ranks(preset_model, rows, 0.07, extra_params("colora", preset_model))
    assert abs(total - 0.07 * base_params) <= 0.01 * 0.07 * base_params


def test_budget_too_small_for_the_extras_is_a_clear_error(preset_model):
    extra = extra_params("colora", preset_model)
    base_params = sum(p.numel() for p in preset_model.parameters())
    with pytest.raises(ColoraError, match="raise the budget") as info:
        allocate_ranks(preset_model, random_profile(preset_model), 0.5 * extra / base_params, extra)
    assert "train_bias" in str(info.value) and "\n" not in str(info.value)
    # without the extras the same budget is fine
    off = {"train_bias": False, "train_norm": False, "train_layer_scale": False}
    _, _, total = allocate_ranks(preset_model, random_profile(preset_model), 0.5 * extra / base_params,
                                 extra_params("colora", preset_model, **off))
    assert abs(total - 0.5 * extra) <= 0.01 * 0.5 * extra


def test_budget_beyond_what_colora_can_train_is_a_clear_error(preset_model):
    """delta_max = 0.5 caps each layer's trainable fraction: a budget of 0.6 cannot be met, and the
    allocation says so rather than returning a smaller adapter than asked."""
    with pytest.raises(ColoraError, match=r"adapter\.budget 0\.6 cannot be met: .*delta_max.*lower the budget"):
        allocate_ranks(preset_model, random_profile(preset_model), 0.6, extra_params("colora", preset_model))


def test_profile_missing_layers_is_a_clear_error(preset_model):
    with pytest.raises(ColoraError, match=r"no score for 1 layers .*'middle_blks\.0\.conv4'.*rerun colora faig"):
        allocate_ranks(preset_model, random_profile(preset_model, drop="middle_blks.0.conv4"), 0.07, 0)
    tiny_rows = random_profile(tiny_model())  # a profile of another architecture
    with pytest.raises(ColoraError, match="another architecture"):
        allocate_ranks(preset_model, tiny_rows, 0.07, 0)


# ---- colora finetune end to end ------------------------------------------------------------------
def test_finetune_raises_validation_psnr_and_writes_the_adapter_folder(finetuned):
    folder = finetuned["dir"] / "adapter"
    for f in ("adapter_config.json", "adapter_model.safetensors", "README.md", "faig.json"):
        assert (folder / f).is_file(), f
    assert (finetuned["dir"] / "faig.json").is_file()
    assert plotted(folder / "faig.png") and plotted(finetuned["dir"] / "faig.png")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["method"] == "colora" and config["task"] == "noise"
    val = config["validation"]
    assert val["adapted"]["psnr"] > val["base"]["psnr"] + 0.3, val
    assert abs(config["trainable_percent"] - 7.0) <= 0.07  # the budget, within 1 %
    assert set(config["allocation"]) == set(layer_shapes(tiny_model()))
    # the command prints the two PSNRs
    line = next(ln for ln in finetuned["out"].splitlines() if "validation PSNR" in ln)
    assert f"{val['base']['psnr']:.2f} dB (base) -> {val['adapted']['psnr']:.2f} dB" in line
    # the FAIG profile it ran is a readable, complete profile of the tiny NAFNet
    rows = faig.load_profile(folder / "faig.json")
    assert {r["name"] for r in rows} >= set(layer_shapes(tiny_model()))
    assert any(r["score"] > 0 for r in rows)


def test_finetuned_adapter_loads_on_the_base_and_reproduces_its_validation(finetuned, work):
    from colora.tuning.finetune import evaluate_model, task_datasets
    from colora.options import load_options

    model = load_checkpoint(build_arch(TINY_NAFNET), work["base"])
    x = photo_batches()[0][0]
    with torch.no_grad():
        before = model(x)
    load_adapter(model, finetuned["dir"] / "adapter")
    with torch.no_grad():
        after = model(x)
    assert (after - before).abs().max() > 1e-3
    opts = load_options(PRESET, tiny_sets(work["exp"], work["base"]))
    _, val_set = task_datasets(opts)
    config = json.loads((finetuned["dir"] / "adapter" / "adapter_config.json").read_text())
    assert evaluate_model(model, val_set)["psnr"] == pytest.approx(config["validation"]["adapted"]["psnr"], abs=1e-3)


def test_faig_command_writes_the_profile_and_prints_top_layers(work, tmp_path):
    """`colora faig --target` with a theta_t that differs from the base in one layer: that layer
    is the top of the printed list, and faig.json/png are written."""
    out_dir = tmp_path / "faig"
    code, out, err = colora_main("faig", "-opt", PRESET, "--target", work["target"], "-o", out_dir,
                                 *as_args(tiny_sets(tmp_path / "exp", work["base"])))
    assert code == 0, err
    lines = out.splitlines()
    top = lines[lines.index("top layers by FAIG score:") + 1:]
    assert top[0].split()[0] == ONE_LAYER
    assert float(top[0].split()[-1]) > 0 and all(float(ln.split()[-1]) == 0 for ln in top[1:8])
    assert plotted(out_dir / "faig.png")
    rows = faig.load_profile(out_dir / "faig.json")
    assert max(rows, key=lambda r: r["score"])["name"] == ONE_LAYER
    meta = json.loads((out_dir / "faig.json").read_text())["meta"]
    assert meta["theta_t"] == str(work["target"]) and meta["steps"] == 3
    assert not (tmp_path / "exp").exists()  # -o: nothing in the experiments root


def test_compare_writes_one_row_per_method_and_reruns_only_missing_cells(background, work):
    value, error, _ = background["compare"].result()
    if error is not None:
        raise error
    rows, folder = value
    assert folder == work["root"] / "cmp" / "noise_colora_compare"
    assert [r["method"] for r in rows] == ["colora", "lora", "bitfit"]
    rows = list(csv.DictReader((folder / "compare.csv").open()))
    assert [r["method"] for r in rows] == ["colora", "lora", "bitfit"]
    for r in rows:
        assert float(r["trainable_percent"]) > 0 and float(r["adapter_kb"]) > 0
        assert float(r["psnr"]) > 0 and float(r["train_s"]) > 0 and float(r["peak_rss_mb"]) > 0
    assert abs(float(rows[0]["trainable_percent"]) - 7.0) <= 0.07
    md = (folder / "compare.md").read_text().strip().splitlines()
    assert md[0].startswith("| method |") and len(md) == 2 + 3
    assert [ln.split("|")[1].strip() for ln in md[2:]] == ["colora", "lora", "bitfit"]
    # the command, rerun: every cell is done, so nothing trains; the tables are rewritten and printed
    results = (folder / "results.jsonl").read_text()
    t = time.monotonic()
    code, out, err = colora_main("compare", "-opt", PRESET, "--methods", "bitfit,colora", *as_args(compare_sets(work)))
    assert code == 0, err
    assert time.monotonic() - t < 10
    assert "compare: training" not in out + err
    assert out.splitlines()[0].startswith("| method |") and f"tables: {folder / 'compare.md'}" in out
    assert (folder / "results.jsonl").read_text() == results
    # the CoLoRA cell reused the saved profile (no FAIG of its own) and allocated ranks from it
    profile = json.loads(work["profile"].read_text())
    config = json.loads((folder / "colora" / "adapter" / "adapter_config.json").read_text())
    ranks, _, _ = allocate_ranks(tiny_model(), profile["layers"], 0.07, extra_params("colora", tiny_model()))
    assert config["allocation"] == ranks
    assert json.loads((folder / "colora" / "adapter" / "faig.json").read_text()) == profile
    assert plotted(folder / "colora" / "adapter" / "faig.png")
    assert [r["method"] for r in csv.DictReader((folder / "compare.csv").open())] == ["colora", "bitfit"]
    # --match-budget: LoRA at the uniform rank nearest CoLoRA's budget, a row of its own
    code, out, err = colora_main("compare", "-opt", PRESET, "--methods", "colora,lora", "--match-budget",
                                 *as_args(compare_sets(work)))
    assert code == 0, err
    table = [ln.split("|")[1].strip() for ln in out.splitlines() if ln.startswith("| ")]
    assert table == ["method", "colora", "lora@budget"]
    settings = json.loads((folder / "lora@budget" / "adapter" / "adapter_config.json").read_text())["settings"]
    assert settings["rank"] == uniform_rank(tiny_model(), 0.07, extra_params("lora", tiny_model()))
    assert settings["match_budget"]
    assert (folder / "results.jsonl").read_text().startswith(results)  # the rank-8 lora row is kept


# ---- bad inputs: one line, exit 2, nothing trained --------------------------------------------
def write_pairs(root, extra_lq=None):
    """A tiny paired folder (3 pairs of 40-px crops of a bundled photo) + an optional unmatched LQ file."""
    clean = cv2.resize(skimage_data.coffee(), (80, 80), interpolation=cv2.INTER_AREA)
    for side in ("lq", "gt"):
        (root / side).mkdir(parents=True)
    for i, (y, x) in enumerate([(0, 0), (0, 40), (40, 0)]):
        crop = np.ascontiguousarray(clean[y:y + 40, x:x + 40, ::-1])
        cv2.imwrite(str(root / "gt" / f"{i:03d}.png"), crop)
        cv2.imwrite(str(root / "lq" / f"{i:03d}.png"), cv2.GaussianBlur(crop, (5, 5), 1.5))
    if extra_lq:
        cv2.imwrite(str(root / "lq" / extra_lq), clean[:40, :40])
    return root / "lq", root / "gt"


def bad_input_cases(work, tmp_path):
    lq, gt = write_pairs(tmp_path / "pairs", extra_lq="stray.png")
    folder = ["datasets.train.type=PairedFolderDataset", f"datasets.train.dataroot_lq={lq}",
              f"datasets.train.dataroot_gt={gt}"]
    return {
        "checkpoint": ([f"path.pretrain_network_g={work['wide']}"],
                       r"does not fit NAFNet.*shape mismatch.*\"width\": 16"),
        "folder": (folder, r"1 problem: no GT image for LQ '.*stray\.png'"),
        "budget0": (["adapter.budget=0"], r"budget must be between 0 and 1.*got 0"),
        "budget1.5": (["adapter.budget=1.5"], r"budget must be between 0 and 1.*got 1\.5"),
        "method": (["adapter.method=lorax"], r"adapter\.method is 'lorax'; choose one of: colora, lora"),
        "match_budget": (["adapter.match_budget=true"], r"match_budget picks a uniform LoRA rank.*method: lora"),
    }


@pytest.mark.parametrize("case", ["checkpoint", "folder", "budget0", "budget1.5", "method", "match_budget"])
def test_bad_inputs_are_one_line_errors_before_training(work, tmp_path, case):
    sets, pattern = bad_input_cases(work, tmp_path)[case]
    exp = tmp_path / "exp"
    t = time.monotonic()
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(tiny_sets(exp, work["base"]) + sets))
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("colora: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err and out == ""
    assert not exp.exists()  # nothing written, nothing trained
    assert time.monotonic() - t < 10


def test_bad_input_in_a_real_process_and_for_compare(background, work, tmp_path):
    """The same in a fresh interpreter (what a user sees), and `colora compare` refuses an unknown
    method before training any cell."""
    code, out, err, _ = background["bad"].result()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"colora: error: checkpoint '{work['wide']}' does not fit NAFNet: ")
    assert '"width": 16' in lines[0]  # it says what the checkpoint would fit
    assert not (work["root"] / "bad").exists()
    code, out, err = colora_main("compare", "-opt", PRESET, "--methods", "colora,lorax",
                                 *as_args(tiny_sets(tmp_path / "cmp", work["base"])))
    assert code == 2 and "unknown method 'lorax'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cmp").exists()


def test_presets_take_the_architecture_their_base_checkpoint_records(work, tmp_path):
    """`network_g: ~` (the fine-tuning presets): a base of another size fine-tunes with no network_g
    override, the adapter records that base; pre-training refuses `network_g: ~` in one line."""
    exp = tmp_path / "exp"
    sets = [s for s in tiny_sets(exp, work["wide"]) if not s.startswith("network_g.")]
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(sets))
    assert code == 0, err
    config = json.loads((exp / "noise_colora" / "adapter" / "adapter_config.json").read_text())
    assert config["base_arch"]["width"] == 16
    code, out, err = colora_main("pretrain", "--preset", "nafnet_tiny_prod", "--set", "network_g=~",
                                 "--set", f"path.experiments_root={tmp_path / 'pre'}")
    assert code == 2 and "network_g: ~" in err and "Traceback" not in err, err


def test_an_adapter_worse_than_the_base_is_reported(work, tmp_path):
    """On a base that returns its input (ending conv zeroed), a run with far too high an lr ends
    below the base on validation: the run says so in a warning."""
    model = tiny_model()
    with torch.no_grad():
        model.ending.weight.zero_()
        model.ending.bias.zero_()
    identity = tmp_path / "identity.safetensors"
    save_checkpoint(identity, model.state_dict(), network_g=TINY_NAFNET)
    sets = tiny_sets(tmp_path / "exp", identity) + ["train.optim_g.lr=0.3"]
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(sets))
    assert code == 0, err
    assert "worse than the base alone" in err


def test_finetune_continues_an_adapter_from_its_folder(finetuned, work, tmp_path):
    """path.pretrain_adapter: a run goes on from an adapter's layers, ranks and weights (no FAIG):
    at a vanishing lr it ends where that adapter was; another method or pre-training refuse it."""
    start = finetuned["dir"] / "adapter"
    before = json.loads((start / "adapter_config.json").read_text())
    exp = tmp_path / "exp"
    sets = tiny_sets(exp, work["base"]) + [f"path.pretrain_adapter={start}", "train.optim_g.lr=1e-12",
                                           "train.total_iter=2"]
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(sets))
    assert code == 0, err
    folder = exp / "noise_colora" / "adapter"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["started_from"] == str(start) and not (exp / "noise_colora" / "faig.json").exists()
    assert config["layers"] == before["layers"] and config["trainable_params"] == before["trainable_params"]
    assert config["validation"]["adapted"]["psnr"] == pytest.approx(before["validation"]["adapted"]["psnr"], abs=0.02)
    assert config["validation"]["adapted"]["psnr"] > config["validation"]["base"]["psnr"] + 0.3
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(sets + ["adapter.method=lora", "name=x"]))
    assert code == 2 and "is a colora adapter but adapter.method is lora" in err, err
    code, out, err = colora_main("finetune", "-opt", PRESET, *as_args(
        tiny_sets(tmp_path / "e2", work["base"]) + [f"path.pretrain_adapter={tmp_path / 'nowhere'}"]))
    assert code == 2 and "is not an adapter folder" in err and "Traceback" not in err, err
    code, out, err = colora_main("pretrain", "--preset", "nafnet_tiny_prod", "--set", f"path.pretrain_adapter={start}",
                                 "--set", f"path.experiments_root={tmp_path / 'pre'}")
    assert code == 2 and "is for fine-tuning" in err, err
