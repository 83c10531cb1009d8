"""The adapter layer as a user relies on it, on a real photo pair (scikit-image's astronaut).

Every method in METHODS on both tiny architectures: identity at init, training touches the adapter
only, merge == unmerged, save -> load (in this process and in a fresh one), A -> B -> A swaps,
strength blending, the files on disk, clear errors for bad inputs, parameter counts, and
channels_last / bf16 inference.
"""
import copy
import functools
import json
import subprocess
import sys
import textwrap
import types

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skimage_data

from colora.adapters import (METHODS, adapter_state_dict, attach_adapter, base_sha256, base_state_dict,
                             count_trainable, get_hub, list_adapters, load_adapter, merge_adapter, remove_adapter,
                             save_adapter, set_adapter, set_strength, trainable_parameters, unmerge_adapter)
from colora.archs import build_arch
from colora.checkpoint import save_checkpoint, state_dict_sha256
from colora.errors import AdapterError, OptionsError
from tests.conftest import TINY_NAFNET, TINY_RESTORMER, randomize_layer_scales

ARCHS = {"nafnet": TINY_NAFNET, "restormer": TINY_RESTORMER}
LAST_CONV = {"nafnet": "ending", "restormer": "output"}
ALL_METHODS = sorted(METHODS)
# Adam, 3 steps. lr 1e-2 suits the parameter-efficient methods (DiffFit and SVDiff want ~10x the
# pre-training lr). `full` and `decoder` tune every weight of the (decoder of the) network: at 1e-2
# their first Adam steps overshoot (Restormer's loss rises), so they get the pre-training lr 1e-3.
# SCT trains a K x K map on K = C/8 channels (1..4 here): 3e-2 makes its drop clear.
# With these, the loss falls by >= 2 % on every method, architecture and seed 0..4 tried.
STEPS, LR, METHOD_LR = 3, 1e-2, {"full": 1e-3, "decoder": 1e-3, "sct": 3e-2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: a second OpenMP thread only adds sync overhead (5x slower on a busy
    2-core box). The thread count is restored for the other test files."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- helpers -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _photo_pair_arrays():
    clean = cv2.resize(skimage_data.astronaut(), (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    noise = np.random.default_rng(0).normal(0.0, 0.1, clean.shape).astype(np.float32)
    noisy = np.clip(clean + noise, 0.0, 1.0)
    return noisy, clean


def photo_pair():
    """(noisy input, clean target), both (1, 3, 48, 48) float32 in [0, 1]; fresh tensors each call."""
    return tuple(torch.from_numpy(a).permute(2, 0, 1)[None].contiguous() for a in _photo_pair_arrays())


def make_model(arch, seed=0):
    """A tiny base network with seeded weights (NAFNet's layer scales randomized so every block acts)."""
    torch.manual_seed(seed)
    return randomize_layer_scales(build_arch(ARCHS[arch]), seed).eval()


def attach(model, method, name=None, seed=0, **settings):
    torch.manual_seed(seed)  # LoRA's A factor is random
    calib = [photo_pair()[0]] if method == "sct" else None  # SCT picks channels from task inputs
    return attach_adapter(model, {"method": method, **settings}, name=name, calib=calib)


def run(model, x=None):
    with torch.no_grad():
        return model(photo_pair()[0] if x is None else x)


def loss_of(model, target=None):
    noisy, clean = photo_pair()
    return F.l1_loss(run(model, noisy), clean if target is None else target).item()


def train(model, target=None, steps=STEPS):
    """A few Adam steps of the active adapter on the photo pair (or toward another `target`)."""
    noisy, clean = photo_pair()
    target = clean if target is None else target
    hub = get_hub(model)
    opt = torch.optim.Adam(trainable_parameters(model), lr=METHOD_LR.get(hub.configs[hub.active]["method"], LR))
    for _ in range(steps):
        opt.zero_grad()
        F.l1_loss(model(noisy), target).backward()
        opt.step()
    return model


# task -> (LoRA init seed, training target, steps); "darken" only has to give adapter B weights
# that differ from A's, so one step does.
TASKS = {"denoise": (1, lambda: photo_pair()[1], STEPS),
         "darken": (2, lambda: photo_pair()[1] * 0.5, 1)}


def training_run(arch, method, task="denoise"):
    return _training_run(arch, method, task)  # one cache key however it is called


@functools.lru_cache(maxsize=None)
def _training_run(arch, method, task):
    """Attach `method` to a fresh base and train it a few steps on `task`, once per session:
    test_training_changes_only_the_adapter inspects the run, the other tests reuse its weights.
    (Tests must not modify the returned model.)"""
    seed, target, steps = TASKS[task]
    inspected = task == "denoise"  # the "darken" run only provides weights: skip the extra forwards
    model = make_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base_out = run(model) if inspected else None
    name = attach(model, method, seed=seed)
    params = trainable_parameters(model)
    trainable_at_start = bool(params) and all(p.requires_grad for p in params)
    start = loss_of(model, target()) if inspected else None
    train(model, target=target(), steps=steps)
    out = run(model) if inspected else None
    return types.SimpleNamespace(model=model, name=name, before=before, base_out=base_out, out=out,
                                 trainable_at_start=trainable_at_start, start=start,
                                 end=F.l1_loss(out, target()).item() if inspected else None,
                                 weights=tuple(p.detach().clone() for p in params),
                                 structure={k: v for k, v in adapter_state_dict(model).items()
                                            if not v.is_floating_point()})


def attach_trained(model, arch, method, name=None, task="denoise"):
    """Attach `method` and give it the weights of `training_run(arch, method, task)`."""
    weights = training_run(arch, method, task).weights
    name = attach(model, method, name=name, seed=TASKS[task][0])
    with torch.no_grad():
        for p, value in zip(trainable_parameters(model), weights, strict=True):
            p.copy_(value)
    mine = adapter_state_dict(model, name)
    for key, value in training_run(arch, method, task).structure.items():
        assert torch.equal(mine[key], value), key  # e.g. SCT picked the same channels
    return name


def trained(arch, method):
    """(model with a trained adapter, base output before attaching, adapted output)."""
    model = make_model(arch)
    base_out = run(model)
    attach_trained(model, arch, method)
    return model, base_out, run(model)


def fresh_like(model, arch):
    """A newly built model holding the same base weights."""
    fresh = build_arch(ARCHS[arch]).eval()
    fresh.load_state_dict(base_state_dict(model), strict=True)
    return fresh


each_method = pytest.mark.parametrize("method", ALL_METHODS)
each_arch = pytest.mark.parametrize("arch", list(ARCHS))


def test_methods_are_the_documented_ones():
    assert set(METHODS) == {"colora", "lora", "svdiff", "difffit", "sct", "bitfit", "decoder", "full"}


# ---- 1. identity at init ---------------------------------------------------------------------------
@each_arch
@each_method
def test_identity_at_init(arch, method):
    # Every method starts at an exact identity by construction: LoRA's B = 0, SVDiff's shift = 0
    # (relu(s) - s = 0 for singular values s >= 0), DiffFit's gamma = 1 and bias 0, SCT's map = 0,
    # and the bias/norm/full deltas are 0. So the output must equal the base output bit for bit.
    model = make_model(arch)
    base_out = run(model)
    attach(model, method)
    assert torch.equal(run(model), base_out)
    merge_adapter(model)
    assert torch.equal(run(model), base_out)


# ---- 2. training ---------------------------------------------------------------------------------
@each_arch
@each_method
def test_training_changes_only_the_adapter(arch, method):
    r = training_run(arch, method)
    model = r.model
    assert r.trainable_at_start
    assert not torch.equal(r.out, r.base_out)
    assert r.end < 0.99 * r.start  # a clear drop, not rounding noise
    params = trainable_parameters(model)
    assert all(p.grad is not None for p in params)
    base = base_state_dict(model)
    assert base.keys() == r.before.keys()
    changed = [k for k in r.before if not torch.equal(base[k], r.before[k])]
    assert not changed, f"base tensors changed by training: {changed[:3]}"
    for name, p in model.named_parameters():
        if not name.startswith("colora_adapters."):
            assert not p.requires_grad and p.grad is None, name
    set_adapter(model, None)
    try:
        assert torch.equal(run(model), r.base_out)
    finally:
        set_adapter(model, r.name)
    assert torch.equal(run(model), r.out)


# ---- 3. merge ------------------------------------------------------------------------------------
@each_arch
@each_method
def test_merge_matches_unmerged_and_unmerge_restores_the_base(arch, method):
    model, base_out, unmerged = trained(arch, method)
    merge_adapter(model)
    merged = run(model)
    assert torch.allclose(merged, unmerged, rtol=0, atol=1e-5)
    assert not torch.equal(merged, base_out)
    unmerge_adapter(model)
    assert torch.equal(run(model), unmerged)
    set_adapter(model, None)
    assert torch.equal(run(model), base_out)  # the very base tensors are back: exact


@each_arch
def test_base_while_merged_is_exact(arch):
    model, base_out, _ = trained(arch, "lora")
    merge_adapter(model)
    set_adapter(model, None)
    assert torch.equal(run(model), base_out)
    key = LAST_CONV[arch] + ".weight"
    assert torch.equal(model.state_dict()[key], base_state_dict(model)[key])


# ---- 4. save -> load -----------------------------------------------------------------------------
@each_arch
@each_method
def test_save_then_load_into_a_fresh_model(tmp_path, arch, method):
    model, _, out = trained(arch, method)
    save_adapter(model, tmp_path / "adapter")
    fresh = fresh_like(model, arch)
    assert base_sha256(fresh) == base_sha256(model)
    name = load_adapter(fresh, tmp_path / "adapter")
    assert list_adapters(fresh) == [name]
    assert torch.equal(run(fresh), out)
    saved, loaded = adapter_state_dict(model), adapter_state_dict(fresh)
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    merge_adapter(fresh)
    assert torch.allclose(run(fresh), out, rtol=0, atol=1e-5)


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import torch
    from colora.adapters import load_adapter
    from colora.archs import build_arch
    from colora.checkpoint import load_checkpoint
    torch.set_num_threads(int(sys.argv[2]))
    for job in json.loads(sys.argv[1]):
        model = load_checkpoint(build_arch(job["network_g"]), job["base"]).eval()
        load_adapter(model, job["adapter"])
        with torch.no_grad():
            torch.save(model(torch.load(job["input"])), job["output"])
""")


def test_save_then_load_in_a_fresh_process(tmp_path):
    """lora, sct and difffit on both architectures; one child process (importing torch costs
    seconds) that builds a new model per adapter from the base checkpoint."""
    jobs, expected = [], {}
    noisy = photo_pair()[0]
    torch.save(noisy, tmp_path / "input.pt")
    for arch in ARCHS:
        for method in ("lora", "sct", "difffit"):
            model, _, out = trained(arch, method)
            folder = tmp_path / f"{arch}-{method}"
            save_adapter(model, folder / "adapter")
            save_checkpoint(folder / "base.safetensors", base_state_dict(model), network_g=model.network_g)
            jobs.append({"network_g": ARCHS[arch], "base": str(folder / "base.safetensors"),
                         "adapter": str(folder / "adapter"), "input": str(tmp_path / "input.pt"),
                         "output": str(folder / "output.pt")})
            expected[jobs[-1]["output"]] = out
    # Same thread count as here: bitwise equality across processes is about the weights, not about
    # how a different number of threads would split the convolutions' sums.
    done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, json.dumps(jobs), str(torch.get_num_threads())],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for path, out in expected.items():
        assert torch.equal(torch.load(path), out), path


# ---- 5. swap -------------------------------------------------------------------------------------
@each_arch
@each_method
def test_swap_a_b_a(arch, method):
    model = make_model(arch)
    base_out = run(model)
    attach_trained(model, arch, method, name="a")
    attach_trained(model, arch, method, name="b", task="darken")
    assert list_adapters(model) == ["a", "b"]

    outs = []
    for name in ("a", "b", "a"):
        set_adapter(model, name)
        outs.append(run(model))
    a1, b1, a2 = outs
    assert torch.equal(a1, a2)
    assert not torch.allclose(a1, b1, atol=1e-4)

    merge_adapter(model)
    outs = []
    for name in ("a", "b", "a"):
        set_adapter(model, name)  # re-merges in place
        outs.append(run(model))
    a3, b3, a4 = outs
    assert torch.equal(a3, a4)
    assert torch.allclose(a3, a1, rtol=0, atol=1e-5) and torch.allclose(b3, b1, rtol=0, atol=1e-5)
    set_adapter(model, None)
    assert torch.equal(run(model), base_out)


def test_swap_after_a_cast_to_bf16():
    """A merged model cast to bf16 (what --precision auto does on a CPU with native bf16) swaps to
    an adapter whose merged buffers were made before the cast (an --adapter auto chain did not)."""
    model = make_model("nafnet")
    attach_trained(model, "nafnet", "lora", name="a")
    attach_trained(model, "nafnet", "lora", name="b", task="darken")
    merge_adapter(model)
    expected = {}
    for name in ("a", "b", None):
        set_adapter(model, name)
        expected[name] = run(model)
    model.to(torch.bfloat16)
    x = photo_pair()[0].to(torch.bfloat16)
    for name in ("a", "b", "a"):
        set_adapter(model, name)
        with torch.no_grad():
            out = model(x).float()
        assert (out - expected[name]).abs().mean() < 0.02, name


@pytest.mark.parametrize("method", ["colora", "svdiff", "bitfit"])
def test_kept_merged_copies_swap_to_the_same_outputs(method):
    """keep_merged_copies: swaps re-point each adapter's own merged tensors (A -> B -> A exact, the
    same outputs as rewriting), survive a bf16 cast, follow a strength change and a reload of the
    adapter's weights, and are freed when turned off."""
    from colora.adapters import adapter_state_dict, get_hub, keep_merged_copies, set_strength

    model = make_model("nafnet")
    attach_trained(model, "nafnet", method, name="a")
    attach_trained(model, "nafnet", method, name="b", task="darken")
    merge_adapter(model)
    expected = {}
    for name in ("a", "b", None):
        set_adapter(model, name)
        expected[name] = run(model)
    keep_merged_copies(model)
    for name in ("a", "b", "a", None, "b"):
        set_adapter(model, name)
        assert torch.equal(run(model), expected[name]), name
    hub = get_hub(model)
    kept = [t for slots in hub._slots.values() for slot in slots.values() for t in slot.kept.values()]
    assert kept and all(not t.requires_grad for t in kept)
    set_strength(model, 0.5)  # kept copies made at strength 1 must not be reused
    half = run(model)
    set_adapter(model, "a"), set_adapter(model, "b")
    assert torch.equal(run(model), half) and not torch.equal(half, expected["b"])
    set_strength(model, 1.0)
    state = {k: v * 0 for k, v in adapter_state_dict(model, "a").items()}
    hub.load_state_of("a", state, "zeros")  # reloaded weights replace a's kept copies
    set_adapter(model, "a")
    assert not torch.equal(run(model), expected["a"])
    model.to(torch.bfloat16)
    set_adapter(model, "b")
    with torch.no_grad():
        out = model(photo_pair()[0].to(torch.bfloat16)).float()
    assert (out - expected["b"]).abs().mean() < 0.02
    keep_merged_copies(model, False)
    assert not any(slot.kept for slots in hub._slots.values() for slot in slots.values())


@pytest.mark.parametrize("arch, method", [("nafnet", m) for m in ALL_METHODS] + [("restormer", "svdiff")])
def test_load_next_to_a_merged_adapter(tmp_path, arch, method):
    """Loading adapter B onto a model where A is merged gives B exactly as on a plain base."""
    model, _, out_b = trained(arch, method)
    save_adapter(model, tmp_path / "b", name=list_adapters(model)[0])
    other = fresh_like(model, arch)
    attach_trained(other, arch, "lora", name="a", task="darken")
    merge_adapter(other)
    out_a = run(other)
    load_adapter(other, tmp_path / "b", name="b")
    assert torch.allclose(run(other), out_b, rtol=0, atol=1e-5)
    set_adapter(other, "a")
    assert torch.equal(run(other), out_a)


def test_remove_adapter_and_unknown_name():
    model, base_out, out = trained("nafnet", "lora")
    attach(model, "bitfit", name="bias")
    with pytest.raises(AdapterError, match="no adapter named 'nope'.*attached: lora, bias"):
        set_adapter(model, "nope")
    remove_adapter(model, "bias")  # the active one: back to the plain base
    assert list_adapters(model) == ["lora"]
    assert torch.equal(run(model), base_out)
    set_adapter(model, "lora")
    assert torch.equal(run(model), out)


@pytest.mark.parametrize("merged", [False, True], ids=["unmerged", "merged"])
def test_deepcopy_of_an_adapted_model_is_independent(merged):
    """EMA copies (timm ModelEmaV2) and many user scripts use deepcopy: the copy must run its own
    adapter, not the original's."""
    model, base_out, _ = trained("nafnet", "lora")
    if merged:
        merge_adapter(model)
    out = run(model)
    ema = copy.deepcopy(model)
    assert torch.equal(run(ema), out)
    with torch.no_grad():
        for p in trainable_parameters(ema):
            p.mul_(0.5)
    if merged:
        merge_adapter(ema)  # re-merge the changed adapter
    assert not torch.equal(run(ema), out)
    assert torch.equal(run(model), out)
    set_adapter(ema, None)
    assert torch.equal(run(ema), base_out)
    assert torch.equal(run(model), out)


# ---- 6. strength ---------------------------------------------------------------------------------
@each_arch
@each_method
def test_strength_blends_base_and_adapter(arch, method):
    model, base_out, full = trained(arch, method)
    set_strength(model, 0.0)
    assert torch.equal(run(model), base_out)
    set_strength(model, 1.0)
    assert torch.equal(run(model), full)
    set_strength(model, 0.5)
    half = run(model)
    assert not torch.allclose(half, base_out, atol=1e-5) and not torch.allclose(half, full, atol=1e-5)

    # Merged: every effective tensor at 0.5 is the midpoint of the base and the adapted tensor.
    merge_adapter(model)
    assert torch.allclose(run(model), half, rtol=0, atol=1e-5)
    weights = {}
    for s in (0.0, 0.5, 1.0):
        set_strength(model, s)
        weights[s] = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("colora_adapters.")}
    base = base_state_dict(model)
    assert any(not torch.equal(weights[0.0][k], weights[1.0][k]) for k in weights[0.0])
    for k, w0 in weights[0.0].items():
        # strength 0 is the base; DiffFit's new bias on a bias-free conv is zero there
        assert torch.equal(w0, base[k] if k in base else torch.zeros_like(w0)), k
        assert torch.allclose(weights[0.5][k], (w0 + weights[1.0][k]) / 2, rtol=0, atol=1e-6), k


def test_lora_half_strength_weight_is_the_midpoint():
    model, _, _ = trained("nafnet", "lora")
    merge_adapter(model)
    key = "encoders.0.0.conv1.weight"
    w = {}
    for s in (0.0, 0.5, 1.0):
        set_strength(model, s)
        w[s] = model.state_dict()[key].clone()
    assert not torch.equal(w[0.0], w[1.0])
    assert torch.allclose(w[0.5], (w[0.0] + w[1.0]) / 2, rtol=0, atol=1e-7)


# ---- 7. files ------------------------------------------------------------------------------------
TUNER_TENSORS = {"lora_A.weight", "lora_B.weight", "sct_index", "sct_map", "svdiff_delta", "difffit_gamma",
                 "difffit_bias"}
KEY_SUFFIXES = {"lora": ("lora_A.weight", "lora_B.weight"), "colora": ("lora_A.weight", "lora_B.weight"),
                "sct": ("sct_index", "sct_map"), "svdiff": ("svdiff_delta",),
                "difffit": ("difffit_gamma", "difffit_bias"), "bitfit": ("bias_delta",),
                "decoder": ("weight_delta",), "full": ("weight_delta",)}


@each_arch
@each_method
def test_adapter_folder(tmp_path, arch, method):
    from safetensors.torch import load_file

    model = make_model(arch)
    attach(model, method, name="astro")
    folder = save_adapter(model, tmp_path / "astro", info={"data": "astronaut 48x48"})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["method"] == method and config["name"] == "astro"
    assert config["base_arch"] == model.network_g and config["base_arch"]["type"] == ARCHS[arch]["type"]
    assert config["base_sha256"] == base_sha256(model) == state_dict_sha256(base_state_dict(make_model(arch)))
    assert config["trainable_params"] == count_trainable(model)[0] > 0
    assert config["data"] == "astronaut 48x48"

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    modules = dict(model.named_modules())
    owners = set(config["layers"])
    assert owners and owners <= set(modules)
    for key in tensors:  # peft-style keys: '<module path>.<tuner tensor>'
        owner = max((o for o in owners if key.startswith(o + ".")), key=len, default=None)
        assert owner is not None, key
        tensor = key[len(owner) + 1:]
        assert tensor in TUNER_TENSORS or (tensor.endswith("_delta") and
                                           tensor[: -len("_delta")] in dict(modules[owner].named_parameters())), key
    for suffix in KEY_SUFFIXES[method]:
        assert any(k.endswith("." + suffix) for k in tensors), suffix
    if method in ("lora", "colora"):
        a_keys = [k for k in tensors if k.endswith(".lora_A.weight")]
        assert a_keys and all(k[: -len("lora_A.weight")] + "lora_B.weight" in tensors for k in a_keys)
        assert all(k[: -len(".lora_A.weight")] in modules for k in a_keys)
    readme = (folder / "README.md").read_text()
    assert method in readme and "astronaut" in readme


# ---- 8. bad inputs -------------------------------------------------------------------------------
@pytest.fixture
def saved_lora(tmp_path):
    model, _, out = trained("nafnet", "lora")
    return model, save_adapter(model, tmp_path / "lora"), out


def test_load_onto_another_base_needs_force(saved_lora):
    _, folder, out = saved_lora
    other = make_model("nafnet", seed=1)
    other_base = run(other)
    with pytest.raises(AdapterError, match="another base"):
        load_adapter(other, folder)
    assert list_adapters(other) == [] and torch.equal(run(other), other_base)
    name = load_adapter(other, folder, force=True)
    assert list_adapters(other) == [name]
    forced = run(other)
    assert not torch.equal(forced, other_base) and not torch.equal(forced, out)


@pytest.mark.parametrize("cfg", [dict(TINY_NAFNET, width=16), TINY_RESTORMER], ids=["nafnet-w16", "restormer"])
def test_load_onto_another_architecture(saved_lora, cfg):
    _, folder, _ = saved_lora
    with pytest.raises(AdapterError, match="made for NAFNet.*cannot be loaded") as err:
        load_adapter(build_arch(cfg), folder, force=True)
    if cfg["type"] == "NAFNet":
        assert "width=8" in str(err.value) and "16" in str(err.value)


def test_truncated_weights(saved_lora):
    _, folder, _ = saved_lora
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterError, match="adapter_model.safetensors.*(corrupt|truncated)"):
        load_adapter(make_model("nafnet"), folder)


def test_missing_weights_file(saved_lora):
    _, folder, _ = saved_lora
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="adapter_model.safetensors is missing"):
        load_adapter(make_model("nafnet"), folder)


def test_corrupt_config(saved_lora):
    _, folder, _ = saved_lora
    (folder / "adapter_config.json").write_text('{"method": "lora", "layers": ')
    with pytest.raises(AdapterError, match="adapter_config.json.*corrupt"):
        load_adapter(make_model("nafnet"), folder)


def test_unknown_method_in_config(saved_lora):
    _, folder, _ = saved_lora
    path = folder / "adapter_config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), method="lorax")))
    with pytest.raises(AdapterError, match="'lorax'.*known: .*colora.*lora.*svdiff"):
        load_adapter(make_model("nafnet"), folder)


def test_weights_that_do_not_match_the_config(saved_lora):
    model, folder, _ = saved_lora
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config["layers"]["intro"][0]["rank"] = 2  # the file holds rank-8 factors
    path.write_text(json.dumps(config))
    target = fresh_like(model, "nafnet")
    with pytest.raises(AdapterError, match="does not match its config: shape of intro.lora_"):
        load_adapter(target, folder)
    assert list_adapters(target) == []


def test_missing_folder(tmp_path):
    with pytest.raises(AdapterError, match="not found"):
        load_adapter(make_model("nafnet"), tmp_path / "nowhere")


def test_same_adapter_loaded_twice(saved_lora):
    model, folder, _ = saved_lora
    with pytest.raises(AdapterError, match="already attached"):
        load_adapter(model, folder)


@pytest.mark.parametrize("arch, pattern, near", [
    ("nafnet", "conv9", "'conv"),  # did you mean 'conv5' or 'conv4' or 'conv3'?
    ("nafnet", "encoders.0.0.cnv1", "encoders.0.0.conv1"),
    ("restormer", "project_ot", "project_out"),
])
def test_rank_pattern_typo(arch, pattern, near):
    with pytest.raises(AdapterError, match="rank_pattern") as err:
        attach(make_model(arch), "lora", rank_pattern={pattern: 4})
    assert f"'{pattern}'" in str(err.value) and "did you mean" in str(err.value) and near in str(err.value)


def test_target_that_matches_nothing():
    with pytest.raises(AdapterError, match="target 'encoder\\.conv1' matches no adaptable layer"):
        attach(make_model("nafnet"), "lora", target=["encoder.conv1"])
    with pytest.raises(AdapterError, match="not a valid regular expression"):
        attach(make_model("nafnet"), "lora", target=["conv[1"])


def test_failed_attach_keeps_the_active_adapter():
    model, _, out = trained("nafnet", "lora")
    for bad in ({"method": "lora", "target": ["nothing_here"]}, {"method": "sct"}):
        with pytest.raises(AdapterError):
            attach_adapter(model, bad, name="second")
        assert torch.equal(run(model), out)
    with pytest.raises(AdapterError, match="already attached"):
        attach(model, "lora", name="lora")
    assert list_adapters(model) == ["lora"]
    assert torch.equal(run(model), out)  # the adapter that was active still is


def test_sct_needs_calibration_images():
    with pytest.raises(AdapterError, match="calib"):
        attach_adapter(make_model("nafnet"), method="sct")
    with pytest.raises(AdapterError, match="calibration set was empty"):
        attach_adapter(make_model("nafnet"), method="sct", calib=[])


def test_unknown_method_and_option_typos():
    with pytest.raises(OptionsError, match="method is 'loraa'; choose one of: colora, lora"):
        attach_adapter(make_model("nafnet"), method="loraa")
    with pytest.raises(OptionsError, match="unknown key 'rnak'.*did you mean 'rank'"):
        attach_adapter(make_model("nafnet"), {"method": "lora", "rnak": 4})
    with pytest.raises(OptionsError, match="rank must be between 0 and 4096"):
        attach_adapter(make_model("nafnet"), method="lora", rank=-1)


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_out_of_range(strength):
    model, _, out = trained("nafnet", "lora")
    with pytest.raises(AdapterError, match=f"strength must be between 0 and 1, got {strength}"):
        set_strength(model, strength)
    assert torch.equal(run(model), out)


def test_no_adapter_attached():
    with pytest.raises(AdapterError, match="no adapter attached"):
        set_adapter(make_model("nafnet"), None)


# ---- 9. counting ---------------------------------------------------------------------------------
@each_arch
@each_method
def test_count_trainable(arch, method):
    model = make_model(arch)
    base_numel = sum(p.numel() for p in model.parameters())
    attach(model, method)
    n, percent = count_trainable(model)
    assert n == sum(p.numel() for p in trainable_parameters(model)) > 0
    assert percent == pytest.approx(100.0 * n / base_numel)
    if method == "full":
        assert n == base_numel and percent == pytest.approx(100.0)
    else:
        assert percent < 100.0


@each_arch
def test_rank_zero_means_no_lora_on_that_layer(arch):
    first, second = ("intro" if arch == "nafnet" else "patch_embed.proj"), LAST_CONV[arch]
    model = make_model(arch)
    attach(model, "lora", rank=4, rank_pattern={first: 0, second: 2})
    keys = adapter_state_dict(model)
    assert f"{first}.lora_A.weight" not in keys and f"{first}.lora_B.weight" not in keys
    assert first not in get_hub(model).configs["lora"]["layers"]
    assert keys[f"{second}.lora_A.weight"].shape[0] == 2
    assert all(v.shape[0] == 4 for k, v in keys.items() if k.endswith("lora_A.weight") and not k.startswith(second))


@each_arch
def test_lora_skips_depthwise_convs_unless_train_depthwise(arch):
    model = make_model(arch)
    depthwise = [p for p, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise  # NAFNet's conv2, Restormer's qkv_dwconv / dwconv
    attach(model, "lora", name="plain")
    keys = adapter_state_dict(model)
    assert not any(k.startswith(p + ".") for k in keys for p in depthwise)

    attach(model, "lora", name="dw", train_depthwise=True)
    keys = adapter_state_dict(model, "dw")
    modules = dict(model.named_modules())
    for p in depthwise:
        assert f"{p}.lora_A.weight" not in keys
        assert keys[f"{p}.weight_delta"].shape == modules[p].weight.shape
    train(model)
    assert all(adapter_state_dict(model, "dw")[f"{p}.weight_delta"].abs().sum() > 0 for p in depthwise)


def test_lora_rank_is_clamped_to_what_the_layer_can_express():
    model = make_model("nafnet")
    attach(model, "lora", rank=64)
    keys = adapter_state_dict(model)
    assert keys["intro.lora_A.weight"].shape == (8, 3, 3, 3)  # min(C_out=8, 3*3*3=27)
    assert keys["ending.lora_A.weight"].shape == (3, 8, 3, 3)  # min(C_out=3, 8*3*3)


# ---- 10. channels_last + bf16 ----------------------------------------------------------------------
@each_arch
def test_merged_lora_channels_last_and_bf16(arch):
    model, base_out, unmerged = trained(arch, "lora")
    merge_adapter(model)
    merged = run(model)
    x = photo_pair()[0].contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    assert torch.allclose(run(model, x), merged, rtol=0, atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf = model(x).float()
    assert torch.isfinite(bf).all() and (bf - merged).abs().mean() < 0.02
    # The base tensors kept aside while merged moved too: unmerging and the plain base still work.
    unmerge_adapter(model)
    assert all(w.is_contiguous(memory_format=torch.channels_last)
               for w in base_state_dict(model).values() if w.dim() == 4)
    assert torch.allclose(run(model, x), unmerged, rtol=0, atol=1e-5)
    set_adapter(model, None)
    assert torch.allclose(run(model, x), base_out, rtol=0, atol=1e-5)
