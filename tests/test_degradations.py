"""Degradation ops on real photos (scikit-image's astronaut, chelsea, coffee at ~160 px)."""
import json

import cv2
import numpy as np
import pytest
from skimage import data

from colora.degradations import OPS, TASKS, degrade_task, get_op, list_ops, replay, task_ops
from colora.degradations import legacy
from colora.errors import OptionsError


def _photo(name, size):
    rgb = getattr(data, name)()
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


PHOTOS = {name: _photo(name, 160) for name in ("astronaut", "chelsea", "coffee")}
ASTRONAUT = PHOTOS["astronaut"]


def _grey(img):
    return img @ np.float32([0.299, 0.587, 0.114])


def _mean_abs_laplacian(img):
    return float(np.abs(cv2.Laplacian(_grey(img), cv2.CV_32F)).mean())


# -- every op ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_contract(name):
    op = get_op(name)
    assert op.family in ("blur", "noise", "jpeg", "resize", "weather", "light")
    for i, img in enumerate(PHOTOS.values()):
        before = img.copy()
        out, params = op(img, np.random.default_rng(i))
        assert out.dtype == np.float32 and out.shape == img.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert np.array_equal(img, before), "input was modified"
        assert out is not img and not np.shares_memory(out, img)
        # params are plain JSON and apply is pure: a JSON round trip replays byte-identically
        restored = json.loads(json.dumps(params))
        assert restored == params
        assert op.apply(img, restored).tobytes() == out.tobytes()
    a, _ = op(ASTRONAUT, np.random.default_rng(1))
    b, _ = op(ASTRONAUT, np.random.default_rng(2))
    assert not np.array_equal(a, b), "different rng seeds gave the same output"


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_small_and_odd_sizes(name):
    """Any image of at least 16×16 works, including kernels/streaks larger than the image."""
    img = cv2.resize(ASTRONAUT, (17, 16), interpolation=cv2.INTER_AREA)
    out, _ = get_op(name)(img, np.random.default_rng(0))
    assert out.shape == img.shape and np.isfinite(out).all()
    with pytest.raises(ValueError):
        get_op(name).apply(ASTRONAUT[:8, :8], get_op(name).sample(np.random.default_rng(0)))


# -- noise --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [5.0, 15.0, 30.0])
@pytest.mark.parametrize("grey", [False, True])
def test_gaussian_noise_sigma(sigma, grey):
    grey_img = np.full((128, 128, 3), 0.5, np.float32)  # mid-grey: clipping cannot bias the std
    op = get_op("gaussian_noise")
    out = op.apply(grey_img, {"sigma": sigma, "seed": 7, "grey": grey})
    measured = float((out - grey_img).std())
    assert abs(measured - sigma / 255) < 0.1 * sigma / 255
    channels_equal = np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])
    assert channels_equal == grey


def test_signal_dependent_noise_grows_with_signal():
    ramp = np.repeat(np.linspace(0.05, 0.95, 128, dtype=np.float32)[None, :, None], 128, 0).repeat(3, 2)
    for name, params in (("poisson_noise", {"scale": 1.0, "seed": 3, "grey": False}),
                         ("poisson_gaussian_noise", {"sigma": 25.0, "shot": 1.0, "seed": 3, "grey": False,
                                                     "correlation": 0.0}),
                         ("camera_noise", {"shot": 0.01, "read": 0.0, "seed": 3})):
        diff = get_op(name).apply(ramp, params) - ramp
        dark, bright = diff[:, :32].std(), diff[:, -32:].std()
        assert dark > 0 and bright > 0
        if name != "camera_noise":  # shot noise in the output: std ∝ sqrt(signal)
            assert bright > 2 * dark


def test_poisson_gaussian_noise_sigma_is_the_std_at_mid_grey():
    grey_img = np.full((128, 128, 3), 0.5, np.float32)
    for shot in (0.0, 0.5, 1.0):
        params = {"sigma": 20.0, "shot": shot, "seed": 1, "grey": False, "correlation": 0.0}
        measured = float((get_op("poisson_gaussian_noise").apply(grey_img, params) - grey_img).std())
        assert abs(measured - 20 / 255) < 0.1 * 20 / 255
    black = np.zeros((64, 64, 3), np.float32)
    pure_shot = {"sigma": 20.0, "shot": 1.0, "seed": 1, "grey": True, "correlation": 0.0}
    assert np.array_equal(get_op("poisson_gaussian_noise").apply(black, pure_shot), black)


@pytest.mark.parametrize("name", ["gaussian_noise", "poisson_gaussian_noise"])
def test_noise_grey_colour_and_channel_correlated(name):
    grey_img = np.full((96, 96, 3), 0.5, np.float32)
    op = get_op(name)
    base = {"sigma": 20.0, "seed": 5, **({"shot": 0.5} if name != "gaussian_noise" else {})}
    for grey, correlation in ((False, 0.0), (False, 0.6), (True, 0.0)):
        diff = op.apply(grey_img, {**base, "grey": grey, "correlation": correlation}) - grey_img
        r = np.corrcoef(diff.reshape(-1, 3).T)[0, 1]
        assert abs(r - (1.0 if grey else correlation)) < 0.05, (grey, correlation, r)
    modes = [op.sample(np.random.default_rng(s)) for s in range(200)]
    assert {p["grey"] for p in modes} == {True, False}
    correlated = [p["correlation"] for p in modes if p["correlation"] > 0]
    assert 30 < len(correlated) < 100 and all(0.2 <= c <= 0.9 for c in correlated)
    assert not any(p["grey"] and p["correlation"] for p in modes)
    sigmas = [p["sigma"] for p in modes]
    assert min(sigmas) < 8 and max(sigmas) > 45  # sigma covers 5-50 on the 0-255 scale


def test_old_gaussian_noise_params_replay_as_before():
    """Recipes recorded before `correlation` existed replay to the same bytes as the old op."""
    rng = np.random.default_rng(9)
    old = {"sigma": 12.0, "seed": 9, "grey": False}
    expected = ASTRONAUT + rng.standard_normal(ASTRONAUT.shape, dtype=np.float32) * np.float32(12 / 255)
    got = get_op("gaussian_noise").apply(ASTRONAUT, old)
    assert got.tobytes() == np.clip(expected, 0, 1).astype(np.float32).tobytes()


# -- blur ---------------------------------------------------------------------------------------
BLURS = {"gaussian_blur": {"sigma": (1.5, 3.0)},
         "aniso_gaussian_blur": {"sigma_x": (1.5, 3.0), "sigma_y": (1.0, 3.0)},
         "generalized_gaussian_blur": {"sigma_x": (1.5, 3.0), "sigma_y": (1.0, 3.0)},
         "plateau_blur": {"sigma_x": (1.5, 3.0), "sigma_y": (1.0, 3.0)},
         "defocus_blur": {}, "motion_blur": {}}


@pytest.mark.parametrize("name", sorted(BLURS))
def test_blur_lowers_high_frequencies(name):
    op = get_op(name, **BLURS[name])
    for seed, img in enumerate(PHOTOS.values()):
        out, params = op(img, np.random.default_rng(seed))
        assert _mean_abs_laplacian(out) < 0.8 * _mean_abs_laplacian(img), params
        k = op.kernel(params)
        assert abs(k.sum() - 1) < 1e-6 and k.min() >= 0


def test_motion_blur_records_its_kind():
    op = get_op("motion_blur")
    kinds = {op.sample(np.random.default_rng(s))["kind"] for s in range(20)}
    assert kinds == {"linear", "trajectory"}


def test_motion_blur_trajectories_vary_and_old_paths_replay():
    op = get_op("motion_blur")
    paths = [p for p in (op.sample(np.random.default_rng(s)) for s in range(100)) if p["kind"] == "trajectory"]
    assert 40 < len(paths) < 80
    turns = [p["turn"] for p in paths]
    assert min(turns) < 0.15 and max(turns) > 0.4
    assert any(p["jerk"] == 0 for p in paths) and any(p["jerk"] > 0 for p in paths)
    for p in paths[:10]:
        k = op.kernel(p)
        assert abs(k.sum() - 1) < 1e-6 and k.min() >= 0
    old = {"length": 15.0, "angle": 30.0, "seed": 4, "kind": "trajectory"}  # recorded before `turn`
    assert np.array_equal(op.kernel(old), op.kernel(dict(old, turn=0.25, jerk=0.0)))
    assert not np.array_equal(op.kernel(old), op.kernel(dict(old, turn=0.25, jerk=0.1)))


# -- jpeg ---------------------------------------------------------------------------------------
def _blockiness(img):
    """Mean |column step| across 8×8 block boundaries (x ≡ 7|8) divided by elsewhere."""
    steps = np.abs(np.diff(_grey(img), axis=1))
    at_boundary = (np.arange(steps.shape[1]) % 8) == 7
    return steps[:, at_boundary].mean() / steps[:, ~at_boundary].mean()


def test_jpeg_low_quality_adds_blocking():
    op = get_op("jpeg")
    for img in PHOTOS.values():
        q30, q95 = op.apply(img, {"quality": 30}), op.apply(img, {"quality": 95})
        assert _blockiness(q30) > 1.1 * _blockiness(img)
        assert _blockiness(q30) > _blockiness(q95)


# -- weather and light -------------------------------------------------------------------------
def test_haze_moves_toward_airlight_and_lowers_contrast():
    op = get_op("haze")
    for seed, img in enumerate(PHOTOS.values()):
        out, params = op(img, np.random.default_rng(seed))
        airlight = np.asarray(params["airlight"])
        before = np.abs(img.mean((0, 1)) - airlight)
        after = np.abs(out.mean((0, 1)) - airlight)
        assert (after < before).all()
        assert out.std() < img.std()


def test_haze_variety_depth_and_airlight():
    op = get_op("haze")
    samples = [op.sample(np.random.default_rng(s)) for s in range(150)]
    assert {p["airlight_colour"] for p in samples} == {"grey", "blue", "yellow"}
    for p in samples:
        r, g, b = p["airlight"]
        if p["airlight_colour"] == "blue":
            assert b >= g >= r
        if p["airlight_colour"] == "yellow":
            assert r >= g >= b
        assert p["gradient"] + p["depth_image"] <= 0.9 + 1e-9
    betas = [p["beta"] for p in samples]
    assert min(betas) < 0.6 and max(betas) > 2.5  # light to dense
    assert 0.25 < np.mean([p["depth_image"] > 0 for p in samples]) < 0.55
    assert 0.1 < np.mean([p["airlight_slope"] != 0 for p in samples]) < 0.4
    # transmission varies over the image, and the image-derived proxy makes bright regions far
    p = dict(samples[0], gradient=0.0, depth_image=0.9, airlight_slope=0.0)
    d = op.depth(ASTRONAUT, p)
    assert d.min() >= 0 and d.max() <= 1 + 1e-6 and d.std() > 0.05
    luma = cv2.GaussianBlur(ASTRONAUT @ np.float32([0.299, 0.587, 0.114]), (0, 0), 8)
    assert np.corrcoef(d.ravel(), luma.ravel())[0, 1] > 0.8
    uneven = dict(p, airlight_slope=0.25, airlight_angle=90.0, beta=50.0)  # all airlight: see its glow
    out = op.apply(ASTRONAUT, uneven)
    assert out[:10].mean() > out[-10:].mean() + 0.05  # brighter toward the top


def test_old_weather_params_replay_with_the_first_renderers():
    old = {"rain": {"density": 0.01, "length": 20.0, "angle": 80.0, "width": 2, "brightness": 0.8, "seed": 3},
           "raindrop": {"count": 20, "radius": [3.0, 20.0], "zoom": 2.0, "seed": 4},
           "haze": {"beta": 1.5, "airlight": [0.9, 0.9, 0.95], "gradient": 0.3, "seed": 5}}
    for name, params in old.items():
        out = get_op(name).apply(ASTRONAUT, json.loads(json.dumps(params)))
        expected = np.clip(getattr(legacy, name)(ASTRONAUT, params), 0, 1).astype(np.float32)
        assert out.tobytes() == expected.tobytes() and not np.array_equal(out, ASTRONAUT)


def _dominant_orientation(img):
    """Structure-tensor orientation of the lines in `img`, in degrees (0–180, 90 = vertical,
    counter-clockwise on screen, i.e. the ops' convention)."""
    g = _grey(img)
    gx, gy = cv2.Sobel(g, cv2.CV_64F, 1, 0), cv2.Sobel(g, cv2.CV_64F, 0, 1)  # gy: rows grow down
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    gradient = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))  # in (x, y-down) coordinates
    line_down = gradient + 90.0  # lines run across their gradient
    return (-line_down) % 180.0  # y-down -> on-screen counter-clockwise


def test_rain_streaks_follow_the_drawn_angle():
    op = get_op("rain", density=(0.005, 0.02), layers=(1, 1), veil=(0, 0))
    for seed, img in enumerate(list(PHOTOS.values()) * 3):
        out, params = op(img, np.random.default_rng(seed))
        angle = params["layers"][0]["angle"]
        err = abs(_dominant_orientation(out - img) - angle) % 180
        assert min(err, 180 - err) < 10, params
    # the convention itself: 90 = vertical streaks (difference varies along x, not along y)
    for shape in ("line", "tapered", "motion"):
        layer = {"shape": shape, "density": 0.004, "length": 30.0, "width": 1.0, "angle": 90.0,
                 "brightness": 0.8, "blur": 0.0}
        streaks = op.layer((128, 128), layer, np.random.default_rng(0))
        assert np.abs(np.diff(streaks, axis=0)).mean() < 0.5 * np.abs(np.diff(streaks, axis=1)).mean()


def test_rain_draws_its_variety():
    op = get_op("rain")
    samples = [op.sample(np.random.default_rng(s)) for s in range(120)]
    layers = [layer for p in samples for layer in p["layers"]]
    assert {len(p["layers"]) for p in samples} == {1, 2, 3}
    assert {layer["shape"] for layer in layers} == {"line", "tapered", "motion"}
    assert {p["blend"] for p in samples} == {"screen", "add", "max"}
    angles = [p["layers"][0]["angle"] for p in samples]
    assert min(angles) < 60 and max(angles) > 120 and any(85 < a < 95 for a in angles)
    densities = [p["layers"][0]["density"] for p in samples]
    assert max(densities) > 8 * min(densities)  # sparse to heavy
    assert any(p["veil"] > 0 for p in samples) and any(p["veil"] == 0 for p in samples)
    assert any(p["tint"] != [1.0] * 3 for p in samples) and any(p["tint"] == [1.0] * 3 for p in samples)
    for p in samples:  # the near layer first; far layers shorter, dimmer and blurred
        near, *far = p["layers"]
        assert near["blur"] == 0 and all(f["length"] < near["length"] and f["blur"] > 0 for f in far)
        assert all(layer["width"] <= max(0.3, layer["length"] / 8) + 1e-9 for layer in p["layers"])
    widths = [layer["width"] for layer in layers]
    assert min(widths) < 0.8 and max(widths) > 2


def test_rain_blend_modes():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    params = get_op("rain", density=(0.02, 0.02), brightness=(0.9, 0.9)).sample(np.random.default_rng(1))
    params["veil"], params["tint"] = 0.0, [1.0, 1.0, 1.0]
    rain = np.repeat(get_op("rain").rain_map(flat.shape, params)[..., None], 3, axis=2)
    outs = {b: get_op("rain").apply(flat, dict(params, blend=b)) for b in ("screen", "add", "max")}
    np.testing.assert_allclose(outs["screen"], 1 - 0.5 * (1 - rain), atol=1e-6)
    np.testing.assert_allclose(outs["add"], np.clip(0.5 + rain, 0, 1), atol=1e-6)
    np.testing.assert_allclose(outs["max"], np.maximum(0.5, rain), atol=1e-6)
    assert (outs["add"] >= outs["screen"] - 1e-6).all() and (outs["screen"] >= outs["max"] - 1e-6).all()
    with pytest.raises(OptionsError, match="rain.blend must be one of screen, add, max"):
        get_op("rain").apply(flat, dict(params, blend="multiply"))


def test_raindrop_changes_local_regions():
    op = get_op("raindrop")
    for seed, img in enumerate(list(PHOTOS.values()) * 2):
        out, params = op(img, np.random.default_rng(seed))
        changed = (np.abs(out - img).max(axis=2) > 1e-3).mean()
        assert 0.01 < changed < 0.9, (changed, params)


def test_raindrop_draws_its_variety():
    op = get_op("raindrop")
    samples = [op.sample(np.random.default_rng(s)) for s in range(120)]
    assert {p["flip"] for p in samples} == {True, False}
    assert any(p["drop_blur"] == 0 for p in samples) and any(p["drop_blur"] > 1 for p in samples)
    assert min(p["radius"][0] for p in samples) < 2.5 and max(p["radius"][1] for p in samples) > 25
    for p in samples:
        assert 1.5 <= p["radius"][0] <= p["radius"][1] <= 35 and 5 <= p["count"] <= 60
    counts = [p["count"] for p in samples]
    assert min(counts) <= 10 and max(counts) >= 40
    zooms = [p["zoom"] for p in samples]
    assert min(zooms) < 1 and max(zooms) > 2.5  # magnified pieces and minified wide views


def _one_drop(flip, **extra):
    return {"count": 1, "radius": [30.0, 30.0], "zoom": 1.0, "offset": 0.0, "blur": 0.0, "drop_blur": 0.0,
            "edge": 0.0, "highlight": 0.0, "trail": 0.0, "elongation": 1.0, "flip": flip,
            "light_angle": 135.0, "seed": 0, **extra}


def test_raindrop_refracts_the_background():
    """A drop shows the background around it, flipped (like a real drop lens) when `flip`."""
    ramp = np.repeat(np.linspace(0.1, 0.9, 128, dtype=np.float32)[:, None, None], 128, 1).repeat(3, 2)
    op = get_op("raindrop")
    for seed in range(20):  # the drop's place is drawn from the seed: use one wholly inside the image
        flipped = op.apply(ramp, _one_drop(True, seed=seed))
        straight = op.apply(ramp, _one_drop(False, seed=seed))
        inside = np.abs(flipped - ramp).max(axis=2) > 0.02
        rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
        if len(rows) < 10 or rows.min() == 0 or cols.min() == 0 or rows.max() == 127 or cols.max() == 127:
            continue
        mid = (rows.min() + rows.max()) // 2
        top, bottom = slice(rows.min(), mid), slice(mid, rows.max() + 1)
        # the ramp grows downward; flipped, the drop's top shows the brighter part from below
        assert flipped[top][inside[top]].mean() > flipped[bottom][inside[bottom]].mean() + 0.05
        assert np.abs(straight - ramp).max() < 0.1  # zoom 1, not flipped: nearly the same picture
        break
    else:
        pytest.fail("no drop landed on the image")


def test_lowlight_darkens():
    op = get_op("lowlight")
    for seed, img in enumerate(PHOTOS.values()):
        out, _ = op(img, np.random.default_rng(seed))
        assert out.mean() < 0.6 * img.mean()


# -- tasks, replay, errors ---------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
def test_replay_reproduces_degrade_task(task):
    out, recipe = degrade_task(ASTRONAUT, task, np.random.default_rng(11))
    assert recipe and {step["op"] for step in recipe} <= set(task_ops(task, accessories=True))
    recipe = json.loads(json.dumps(recipe))
    assert replay(ASTRONAUT, recipe).tobytes() == out.tobytes()
    assert not np.array_equal(out, ASTRONAUT)


def test_errors_are_clear():
    with pytest.raises(OptionsError, match="unknown degradation 'gausian_blur'; did you mean 'gaussian_blur'"):
        get_op("gausian_blur")
    with pytest.raises(OptionsError, match="unknown task 'snow'; valid tasks: rain, raindrop"):
        degrade_task(ASTRONAUT, "snow", np.random.default_rng(0))
    with pytest.raises(OptionsError, match=r"range for gaussian_blur.sigma has min 3 > max 1"):
        get_op("gaussian_blur", sigma=(3, 1))
    with pytest.raises(OptionsError, match=r"gaussian_blur has no parameter 'sigmaa' \(did you mean 'sigma'\?\); "
                                           r"valid: kernel_size, sigma"):
        get_op("gaussian_blur", sigmaa=(1, 2))
    with pytest.raises(OptionsError, match=r"range for jpeg.quality must be \(min, max\)"):
        get_op("jpeg", quality=50)
    with pytest.raises(OptionsError, match=r"jpeg.quality must lie within \[1, 100\]"):
        get_op("jpeg", quality=(30, 120))
    with pytest.raises(OptionsError, match="params for gaussian_noise lack 'seed'"):
        replay(ASTRONAUT, [{"op": "gaussian_noise", "params": {"sigma": 5.0, "grey": False}}])


def test_range_overrides_are_used():
    op = get_op("gaussian_blur", kernel_size=(9, 9), sigma=(2.0, 2.0))
    params = op.sample(np.random.default_rng(0))
    assert params == {"kernel_size": 9, "sigma": 2.0}
    assert type(op).ranges["sigma"] == (0.2, 3.0), "overrides must not change the class defaults"
    sizes = {get_op("gaussian_blur").sample(np.random.default_rng(s))["kernel_size"] for s in range(200)}
    assert sizes == set(range(7, 22, 2))


def test_registry_lists_families():
    assert set(list_ops("weather")) == {"rain", "raindrop", "haze"}
    assert set(list_ops("noise")) == {"gaussian_noise", "poisson_noise", "poisson_gaussian_noise", "camera_noise"}
    assert set(list_ops("blur")) == {"gaussian_blur", "aniso_gaussian_blur", "generalized_gaussian_blur",
                                     "plateau_blur", "defocus_blur", "motion_blur"}


TASK_VARIETY = {
    "noise": {"gaussian_noise", "poisson_gaussian_noise", "camera_noise"},
    "blur": {"motion_blur", "defocus_blur", "gaussian_blur", "aniso_gaussian_blur",
             "generalized_gaussian_blur", "plateau_blur", "gaussian_noise"},
    "rain_raindrop": {"rain", "raindrop"},
}


@pytest.mark.parametrize("task", sorted(TASK_VARIETY))
def test_each_task_draws_its_variety(task):
    """Recipes only (no image work): every op of the task is drawn, and the task's overrides apply."""
    small = np.full((16, 16, 3), 0.5, np.float32)
    seen, recipes = set(), []
    for s in range(80):
        _, recipe = degrade_task(small, task, np.random.default_rng(s))
        seen.update(step["op"] for step in recipe)
        recipes.append(recipe)
    assert seen == TASK_VARIETY[task] == set(task_ops(task, accessories=True))
    assert set(task_ops(task)) == seen - ({"gaussian_noise"} if task == "blur" else set())
    if task == "noise":
        sigmas = [st["params"]["sigma"] for r in recipes for st in r if st["op"] == "gaussian_noise"]
        assert all(5 <= x <= 50 for x in sigmas)
    if task == "blur":  # mild noise after blur in about half the samples
        noisy = [r for r in recipes if r[-1]["op"] == "gaussian_noise"]
        assert 20 < len(noisy) < 60 and all(r[-1]["params"]["sigma"] <= 4 for r in noisy)
        assert all(r[0]["op"] != "gaussian_noise" for r in recipes)
    if task == "rain_raindrop":
        assert all([st["op"] for st in r] == ["rain", "raindrop"] for r in recipes)
