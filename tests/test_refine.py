"""Guided refinement after a haze adapter (colora.inference.refine): what it removes, where it runs."""
import numpy as np
import pytest
from skimage import data as skimage_data

from colora.degradations.tasks import degrade_task
from colora.errors import ColoraError
from colora.inference.refine import RULES, guided_filter, guided_refine
from colora.inference.restorer import Restorer
from tests.test_auto import adapter_dir, base, photo  # noqa: F401  (fixtures)
from tests.test_restore import cli


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def test_refinement_removes_a_grid_the_hazy_input_cannot_explain():
    clean = skimage_data.astronaut()[:192, :256].astype(np.float32) / 255
    hazy, _ = degrade_task(clean, "haze", np.random.default_rng(3))
    yy, xx = np.mgrid[:192, :256]
    grid = 0.04 * ((yy % 8 < 4) ^ (xx % 8 < 4))[..., None].astype(np.float32)  # an 8-px checker
    dehazed = np.clip(clean + grid, 0, 1)  # a network output: right colours, a grid on top
    refined = guided_refine(hazy, dehazed, *RULES["haze"])
    assert refined.shape == clean.shape and refined.dtype == np.float32
    assert _mse(refined, clean) < 0.6 * _mse(dehazed, clean)  # the grid is mostly gone (> 2 dB)


def test_strips_give_the_whole_image_result():
    rng = np.random.default_rng(0)
    before, after = rng.random((70, 40, 3), np.float32), rng.random((70, 40, 3), np.float32)
    strips = guided_refine(before, after, 4, 1e-3, rows=16)
    whole = np.clip(np.stack([guided_filter(before[..., c], after[..., c], 4, 1e-3) for c in range(3)], -1), 0, 1)
    np.testing.assert_allclose(strips, whole, atol=1e-5)


def test_restorer_refines_after_a_haze_adapter_only(base, adapter_dir):  # noqa: F811
    img = photo()
    x = img.astype(np.float32) / 255
    for task, refined in (("haze", True), ("noise", False)):
        auto = Restorer.from_files(base, [adapter_dir / task]).restore(x)
        off = Restorer.from_files(base, [adapter_dir / task], refine="off").restore(x)
        if refined:
            np.testing.assert_allclose(auto, guided_refine(x, off, *RULES["haze"]), atol=1e-5)
        else:
            assert np.array_equal(auto, off)
    with pytest.raises(ColoraError, match="refine must be one of"):
        Restorer.from_files(base, [adapter_dir / "haze"], refine="always")


def test_cli_refine_off_keeps_the_network_output(base, adapter_dir, tmp_path):  # noqa: F811
    from colora.imageio import read_image, write_image

    write_image(tmp_path / "in" / "a.png", photo().astype(np.float32) / 255)
    for mode in ("auto", "off"):
        code, out, err = cli("restore", "-i", tmp_path / "in", "-o", tmp_path / mode, "--model", base,
                             "--adapter", adapter_dir / "haze", "--refine", mode, "-q")
        assert code == 0, err
    assert not np.array_equal(read_image(tmp_path / "auto" / "a.png").pixels, read_image(tmp_path / "off" / "a.png").pixels)
    with pytest.raises(SystemExit):  # argparse names the choices
        cli("restore", "-i", tmp_path / "in", "-o", tmp_path / "x", "--refine", "sometimes")
