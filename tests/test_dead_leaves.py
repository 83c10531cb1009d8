"""Dead-leaves images: made from (seed, index) alone, photo-like statistics, and as a dataset option."""
import numpy as np
import pytest

from colora.data.build import build_dataset
from colora.data.dead_leaves import SHADE, dead_leaves, radii
from colora.errors import OptionsError


def spectrum_slope(img):
    """Slope of log radial power vs log frequency (natural photos: about -2 to -3)."""
    g = img.mean(2) - img.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    c = g.shape[0] // 2
    y, x = np.indices(power.shape)
    r = np.hypot(y - c, x - c).astype(int)
    radial = np.bincount(r.ravel(), power.ravel()) / np.bincount(r.ravel())
    f = np.arange(4, c - 20)
    return np.polyfit(np.log(f), np.log(radial[f]), 1)[0]


def test_an_image_is_a_function_of_its_generator_and_looks_like_a_photo_in_spectrum():
    a = dead_leaves(np.random.default_rng([3, 1]), 128)
    assert a.shape == (128, 128, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, dead_leaves(np.random.default_rng([3, 1]), 128))
    assert not np.array_equal(a, dead_leaves(np.random.default_rng([3, 2]), 128))
    slopes = [spectrum_slope(dead_leaves(np.random.default_rng(s), 256)) for s in range(4)]
    assert all(-4.5 < s < -1.5 for s in slopes), slopes  # photos -2 to -3, defocused steeper; white noise 0


def test_radii_follow_r_to_the_minus_3_between_the_bounds():
    r = radii(np.random.default_rng(0), 200_000, 2.0, 64.0)
    assert r.min() >= 2.0 and r.max() <= 64.0
    # density c·r^-3 on [a, b]: P(r > x) = (x^-2 - b^-2) / (a^-2 - b^-2)
    assert np.mean(r > 4.0) == pytest.approx((4.0 ** -2 - 64.0 ** -2) / (2.0 ** -2 - 64.0 ** -2), abs=0.01)


def test_leaf_colours_come_from_the_palette_shaded_by_at_most_shade():
    grey = np.full((1, 3), 0.5, np.float32)
    img = dead_leaves(np.random.default_rng(0), 96, palette=grey)
    assert 0.5 * (1 - SHADE) - 1e-4 <= img.min() and img.max() <= 0.5 * (1 + SHADE) + 1e-4
    assert np.ptp(img[..., 0] - img[..., 2]) < 1e-5  # grey leaves stay grey


def test_a_dataset_with_dead_leaves_adds_them_after_the_photos_and_is_reproducible():
    opts = {"type": "ProdDataset", "gt_size": 32, "photos": ["astronaut", "coffee"], "dead_leaves": 2}
    ds = build_dataset(opts, {"k_max": 2})
    assert len(ds) == 4 and ds.images.names[2:] == ["dead_leaves_00000", "dead_leaves_00001"]
    assert ds.images[3].shape == (512, 512, 3)  # 512 px unless the crops or scene views are larger
    big = build_dataset({**opts, "gt_size": 64, "scene_size": 600, "dead_leaves": 1}, {"k_max": 1})
    assert big.images.size == 600 and big[2]["gt"].shape == (3, 64, 64)
    again = build_dataset(opts, {"k_max": 2})
    a, b = ds[(1, 3)], again[(1, 3)]
    assert a["key"] == "dead_leaves_00001_e1" and a["gt"].shape == (3, 32, 32)
    assert a["gt"].numpy().tobytes() == b["gt"].numpy().tobytes() and a["recipe"] == b["recipe"]
    task = build_dataset({**opts, "type": "TaskDataset", "task": "noise"})
    assert len(task) == 4 and task[3]["key"].startswith("dead_leaves_00001")


@pytest.mark.parametrize("opts, message", [
    ({"type": "PairedFolderDataset", "dead_leaves": 3}, "synthetic dataset"),
    ({"type": "ProdDataset", "dead_leaves": -1}, "dead_leaves must be 0"),
])
def test_bad_dead_leaves_options_are_one_clear_error(opts, message):
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_dataset(opts)
