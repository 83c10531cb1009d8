"""The third haze renderer (validation only): deterministic, physical, and apart from both others."""
import numpy as np
from skimage import data

from scripts import validation_haze as vh


def test_the_renderer_is_deterministic_and_veils_the_photo():
    photo = data.coffee()[::4, ::4].astype(np.float32) / 255
    a, b, other = vh.haze(photo, 3), vh.haze(photo, 3), vh.haze(photo, 4)
    assert a.shape == photo.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, other)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.std() < photo.std() and a.min(2).mean() > photo.min(2).mean()  # less contrast, brighter dark channel


def test_depth_rises_toward_the_horizon_and_the_colour_round_trip_is_exact():
    d = vh.scene_depth((120, 160), np.random.default_rng(0))
    assert d.shape == (120, 160) and 0.0 <= d.min() and d.max() <= 1.0 + 1e-6
    assert d[:10].mean() > d[-10:].mean()  # the sky is farther than the ground at the bottom
    x = np.linspace(0, 1, 256, dtype=np.float32)
    assert np.abs(vh.linear_to_srgb(vh.srgb_to_linear(x)) - x).max() < 1e-5


def test_it_is_not_either_of_the_other_two_renderers():
    from benchmarks.heldout_degradations import degrade
    from colora.degradations.tasks import degrade_task

    photo = data.astronaut()[::4, ::4]
    x = photo.astype(np.float32) / 255
    ours = vh.haze(x, 0)
    assert not np.allclose(ours, degrade(photo, "haze", 0).astype(np.float32) / 255, atol=0.05)
    assert not np.allclose(ours, degrade_task(x, "haze", np.random.default_rng(0))[0], atol=0.05)


def test_the_command_scores_a_base_and_adapter(capsys):
    from colora.inference.restorer import WEIGHTS_DIR

    rows = vh.main(["shipped:" + str(WEIGHTS_DIR / "adapters" / "haze"), "--seeds", "1", "--size", "96"])
    (row,) = rows.values()
    assert row["adapter"][0] > row["input"][0]  # the haze adapter lifts some of this haze too
    assert "third renderer" in capsys.readouterr().out
