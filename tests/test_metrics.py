"""PSNR/SSIM against scikit-image's reference implementations, on real photos."""
import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colora.metrics import calculate_psnr, calculate_ssim, psnr_torch, ssim_torch

# Real photos (camera is grey), cropped to keep the suite fast; odd sizes catch H/W mix-ups.
PHOTOS = {"astronaut": data.astronaut()[40:280, 100:356], "chelsea": data.chelsea()[30:230, 100:361],
          "camera": data.camera()[100:300, 150:390]}


def noisy(img, sigma=10.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def blurred(img):
    return cv2.GaussianBlur(img, (7, 7), 1.5)


def skimage_ssim(a, b, **kw):
    kw = dict(dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), **kw)
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, **kw)


PAIRS = [(name, degrade) for name in PHOTOS for degrade in (noisy, blurred)]


@pytest.mark.parametrize("name,degrade", PAIRS)
def test_psnr_matches_skimage(name, degrade):
    gt = PHOTOS[name]
    out = degrade(gt)
    assert calculate_psnr(out, gt) == pytest.approx(peak_signal_noise_ratio(gt, out, data_range=255), abs=1e-6)


@pytest.mark.parametrize("name,degrade", PAIRS)
def test_ssim_matches_skimage(name, degrade):
    # skimage filters with 'reflect' padding but then drops a 5-pixel border of the SSIM map
    # ((win_size - 1) // 2 with truncate=3.5, sigma=1.5 -> 11 taps), which leaves exactly our
    # 'valid' windows, and its normalised Gaussian is the same as cv2.getGaussianKernel(11, 1.5).
    # So only float rounding separates the two: 1e-9 is far tighter than any wrong window.
    gt = PHOTOS[name]
    out = degrade(gt)
    assert calculate_ssim(out, gt) == pytest.approx(skimage_ssim(gt, out), abs=1e-9)


def test_ssim_tolerance_would_catch_a_wrong_window():
    gt = PHOTOS["astronaut"]
    out = noisy(gt)
    ours = calculate_ssim(out, gt)
    assert abs(ours - skimage_ssim(gt, out, win_size=7, gaussian_weights=False)) > 1e-3
    assert abs(ours - skimage_ssim(gt, out, sigma=2.0)) > 1e-4


@pytest.mark.parametrize("name", PHOTOS)
def test_float_uint8_and_uint16_inputs_agree(name):
    gt, out = PHOTOS[name], noisy(PHOTOS[name])
    for f in (calculate_psnr, calculate_ssim):
        ref = f(out, gt)
        assert f(out / 255.0, gt / 255.0) == pytest.approx(ref, abs=1e-9)
        assert f((out / 255.0).astype(np.float32), (gt / 255.0).astype(np.float32)) == pytest.approx(ref, abs=1e-6)
        assert f(out.astype(np.uint16) * 257, gt.astype(np.uint16) * 257) == pytest.approx(ref, abs=1e-9)


def test_chw_equals_hwc():
    gt, out = PHOTOS["chelsea"], noisy(PHOTOS["chelsea"])
    for f in (calculate_psnr, calculate_ssim):
        assert f(out.transpose(2, 0, 1), gt.transpose(2, 0, 1), input_order="CHW") == f(out, gt)


def test_y_channel_hand_computation():
    # Pure red vs black: Y = 16 + 65.481 and 16 (BT.601, RGB order; BGR order would give 24.966).
    red, black = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    assert calculate_psnr(red, black, test_y_channel=True) == pytest.approx(20 * math.log10(255 / 65.481), abs=1e-9)

    gt, out = PHOTOS["astronaut"], noisy(PHOTOS["astronaut"])
    to_y = lambda x: 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0  # noqa: E731
    mse = np.mean((to_y(out.astype(np.float64)) - to_y(gt.astype(np.float64))) ** 2)
    y_psnr = calculate_psnr(out, gt, test_y_channel=True)
    assert y_psnr == pytest.approx(10 * math.log10(255.0**2 / mse), abs=1e-9)
    assert abs(y_psnr - calculate_psnr(out, gt)) > 0.5  # noise averages down in Y
    assert calculate_ssim(out, gt, test_y_channel=True) != pytest.approx(calculate_ssim(out, gt), abs=1e-3)
    with pytest.raises(ValueError, match="RGB"):
        calculate_psnr(PHOTOS["camera"], PHOTOS["camera"], test_y_channel=True)


def test_crop_border():
    gt = PHOTOS["chelsea"]
    out = gt.copy()
    out[:4] = 0
    out[:, -4:] = 255  # damage only a 4-pixel frame
    assert calculate_psnr(out, gt) < 30
    assert calculate_psnr(out, gt, crop_border=4) == float("inf")
    out = noisy(gt)
    assert calculate_ssim(out, gt, crop_border=8) == calculate_ssim(out[8:-8, 8:-8], gt[8:-8, 8:-8])


def test_identical_images():
    for gt in PHOTOS.values():
        assert calculate_psnr(gt, gt) == float("inf")
        assert calculate_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_mismatched_shapes_and_bad_inputs_raise():
    a, b = PHOTOS["astronaut"], PHOTOS["chelsea"]
    for f in (calculate_psnr, calculate_ssim):
        with pytest.raises(ValueError, match=r"\(240, 256, 3\) vs \(200, 261, 3\)"):
            f(a, b)
    with pytest.raises(ValueError, match="0..255"):
        calculate_psnr(a.astype(np.float32), a.astype(np.float32))  # float on the wrong scale
    with pytest.raises(ValueError, match="input_order"):
        calculate_psnr(a, a, input_order="NHWC")


def to_batch(*imgs):
    return torch.stack([torch.from_numpy(x / 255.0).permute(2, 0, 1).float() for x in imgs])


@pytest.mark.parametrize("crop_border,test_y_channel", [(0, False), (4, False), (0, True), (3, True)])
def test_torch_versions_match_numpy(crop_border, test_y_channel):
    gts = [PHOTOS["astronaut"][:96, :128], PHOTOS["chelsea"][:96, :128]]
    outs = [noisy(gts[0], seed=1), blurred(gts[1])]
    pred, target = to_batch(*outs), to_batch(*gts)
    kw = dict(crop_border=crop_border, test_y_channel=test_y_channel)
    psnr, ssim = psnr_torch(pred, target, **kw), ssim_torch(pred, target, **kw)
    assert psnr.shape == ssim.shape == (2,)
    for i in range(2):  # numpy on the very same float32 values
        p, t = pred[i].permute(1, 2, 0).numpy(), target[i].permute(1, 2, 0).numpy()
        assert psnr[i].item() == pytest.approx(calculate_psnr(p, t, **kw), abs=1e-4)
        assert ssim[i].item() == pytest.approx(calculate_ssim(p, t, **kw), abs=1e-5)


def test_torch_identical_and_grey():
    grey = torch.from_numpy(PHOTOS["camera"][:64, :64] / 255.0).float()[None, None]
    assert psnr_torch(grey, grey).item() == float("inf")
    assert ssim_torch(grey, grey).item() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal shape"):
        psnr_torch(grey, grey[..., :32])
