"""Degradation ops on real photos (scikit-image's astronaut, chelsea, coffee at ~160 px)."""
import json

import cv2
import numpy as np
import pytest
from skimage import data

from colora.degradations import OPS, TASKS, degrade_task, get_op, list_ops, replay
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
                         ("camera_noise", {"shot": 0.01, "read": 0.0, "seed": 3})):
        diff = get_op(name).apply(ramp, params) - ramp
        dark, bright = diff[:, :32].std(), diff[:, -32:].std()
        assert dark > 0 and bright > 0
        if name == "poisson_noise":  # shot noise in the output: std ∝ sqrt(signal)
            assert bright > 2 * dark


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
    op = get_op("rain", density=(0.005, 0.02))
    for seed, img in enumerate(list(PHOTOS.values()) * 2):
        out, params = op(img, np.random.default_rng(seed))
        err = abs(_dominant_orientation(out - img) - params["angle"]) % 180
        assert min(err, 180 - err) < 10, params
    # the convention itself: 90 = vertical streaks (difference varies along x, not along y)
    layer = op.layer((128, 128), dict(params, angle=90.0))
    assert np.abs(np.diff(layer, axis=0)).mean() < 0.5 * np.abs(np.diff(layer, axis=1)).mean()


def test_raindrop_changes_local_regions():
    op = get_op("raindrop")
    for seed, img in enumerate(PHOTOS.values()):
        out, params = op(img, np.random.default_rng(seed))
        changed = (np.abs(out - img).max(axis=2) > 1e-3).mean()
        assert 0.01 < changed < 0.9, (changed, params)


def test_lowlight_darkens():
    op = get_op("lowlight")
    for seed, img in enumerate(PHOTOS.values()):
        out, _ = op(img, np.random.default_rng(seed))
        assert out.mean() < 0.6 * img.mean()


# -- tasks, replay, errors ---------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
def test_replay_reproduces_degrade_task(task):
    out, recipe = degrade_task(ASTRONAUT, task, np.random.default_rng(11))
    assert [step["op"] for step in recipe] == list(TASKS[task])
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
    assert set(list_ops("blur")) == {"gaussian_blur", "aniso_gaussian_blur", "generalized_gaussian_blur",
                                     "plateau_blur", "defocus_blur", "motion_blur"}
