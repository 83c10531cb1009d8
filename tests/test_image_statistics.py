"""Classical image statistics the estimator reads: each moves with its degradation, whoever renders it."""
import numpy as np
import pytest
import torch
from skimage import data

from colora import cli
from colora.inference.estimator import (DegradationEstimator, estimate, load_estimator, save_estimator,
                                        thumbnail, tiles_of, with_statistics)
from colora.inference.image_statistics import STATS, THUMB_STATS, TILE_STATS, thumb_statistics, tile_statistics


def _photo():
    return data.coffee()[::2, ::2].astype(np.float32) / 255  # 200 x 300


def _stats(img):
    img = np.clip(img, 0, 1).astype(np.float32)
    with torch.no_grad():
        tiles = tile_statistics(tiles_of(img)).mean(0)
        return dict(zip(STATS, torch.cat([tiles, thumb_statistics(thumbnail(img))[0]]).tolist()))


@pytest.fixture(scope="module")
def clean():
    return _stats(_photo())


def test_statistics_have_their_shapes_and_are_deterministic():
    img = _photo()
    x, th = tiles_of(img), thumbnail(img)
    a, b = tile_statistics(x), thumb_statistics(th)
    assert a.shape == (x.shape[0], len(TILE_STATS)) and b.shape == (1, len(THUMB_STATS))
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    assert torch.equal(a, tile_statistics(x.clone())) and torch.equal(b, thumb_statistics(th.clone()))
    flat = tile_statistics(torch.full((2, 3, 96, 96), 0.5))  # a flat grey tile: nothing divides by zero
    assert torch.isfinite(flat).all()


def test_noise_raises_the_noise_sigma_by_about_its_level(clean):
    # drawn here with numpy, not by colora's noise op: the statistic measures noise, not a renderer
    noisy = _stats(_photo() + np.random.default_rng(0).normal(0, 25 / 255, _photo().shape))
    luma_sigma = 25 * np.sqrt(0.299 ** 2 + 0.587 ** 2 + 0.114 ** 2)  # the statistic reads the luma
    assert np.exp(noisy["noise_sigma"]) - 0.5 == pytest.approx(luma_sigma, rel=0.2)
    assert noisy["noise_sigma"] > clean["noise_sigma"] + 1.0


def test_blur_widens_edges_and_haze_raises_the_dark_channel(clean):
    import cv2

    blurred = _stats(cv2.GaussianBlur(_photo(), (0, 0), 2.0))
    assert blurred["ratio_1_2"] < clean["ratio_1_2"] - 0.1 and blurred["grad_1"] < clean["grad_1"]
    t = 0.4  # a uniform veil: I = J t + A (1 - t)
    hazy = _stats(_photo() * t + 0.85 * (1 - t))
    assert hazy["dark_mean"] > clean["dark_mean"] + 0.3 and hazy["contrast"] < clean["contrast"]


def test_an_estimator_gains_the_statistics_without_changing_its_answers(tmp_path):
    torch.manual_seed(0)
    old = DegradationEstimator(8).eval()
    new = with_statistics(old).eval()
    img = data.astronaut()
    before, after = estimate(old, img), estimate(new, img)
    assert new.stats and max(abs(before[k] - after[k]) for k in before) < 1e-5
    save_estimator(new, tmp_path / "s.safetensors")
    back = load_estimator(tmp_path / "s.safetensors")
    assert back.stats and estimate(back, img) == estimate(new, img)
    with pytest.raises(ValueError, match="global view"):
        DegradationEstimator(8, global_view=False, stats=True)


def test_statistics_reach_the_head_and_train_from_the_cli(tmp_path):
    start, out = tmp_path / "start.safetensors", tmp_path / "stats.safetensors"
    torch.manual_seed(0)
    save_estimator(DegradationEstimator(4), start)
    assert cli.main(["estimator", "train", "-o", str(out), "--iters", "2", "--batch", "2", "--threads", "1",
                     "--init", str(start), "--stats"]) == 0
    model = load_estimator(out)
    assert model.stats and model.head.weight[:, -32:].abs().sum() > 0  # the statistics' inputs trained
    img = _photo()
    x, th = tiles_of(img), thumbnail(img)
    with torch.no_grad():
        out_a = model(x, th)
        model.stats_mlp[0].bias += 1.0  # the statistics path changes the answer
        assert not torch.allclose(out_a, model(x, th))
