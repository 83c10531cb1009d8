"""PSNR and SSIM computed the way image-restoration papers report them (BasicSR conventions).

Numbers are only comparable across papers if everyone uses the same recipe: values on the 0..255
scale, optional border crop, optional Y channel of ITU-R BT.601 (MATLAB `rgb2ycbcr`), and SSIM with
an 11x11 Gaussian window (sigma 1.5) in 'valid' mode, averaged over channels.

Differences from BasicSR, on purpose:
- our images are RGB (BasicSR reads BGR with cv2), so the Y weights are applied in RGB order;
- everything is computed in float64 (BasicSR converts to Y in float32): differences are at the
  level of float32 rounding, and the numpy and torch versions agree to float64 rounding;
- float inputs must be in [0, 1] (not clipped); one that looks like 0..255 raises ValueError.
"""
import cv2
import numpy as np
import torch

_Y_WEIGHTS = (65.481, 128.553, 24.966)  # for R, G, B in [0, 1]; Y = 16 + w . rgb  (0..255 scale)
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_KERNEL = cv2.getGaussianKernel(11, 1.5)  # 11x1, sums to 1; the 11x11 window is its outer product


def _to_float255(img, input_order):
    """Any supported image -> float64 HxWxC on the 0..255 scale (uint8, uint16 or float in [0, 1])."""
    img = np.asarray(img)
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if img.ndim == 2:
        img = img[..., None]
    elif img.ndim == 3 and input_order == "CHW":
        img = img.transpose(1, 2, 0)
    elif img.ndim != 3:
        raise ValueError(f"expected an HxW, HxWxC or CxHxW image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 65535.0 * 255.0
    if np.issubdtype(img.dtype, np.floating):
        # A float image on the 0..255 scale would silently give nonsense (PSNR ~ -40 dB).
        if img.size and np.abs(img).max() > 2.0:
            raise ValueError("float images must be in [0, 1]; this one looks like 0..255 "
                             "(pass it as uint8 or divide by 255)")
        return img.astype(np.float64) * 255.0
    raise ValueError(f"unsupported image dtype {img.dtype} (use uint8, uint16 or float in [0, 1])")


def _rgb_to_y(img):
    """HxWx3 RGB on 0..255 -> HxWx1 Y of BT.601 (MATLAB rgb2ycbcr), 16..235 for in-range input."""
    if img.shape[-1] != 3:
        raise ValueError(f"test_y_channel needs a 3-channel RGB image, got {img.shape[-1]} channel(s)")
    return (16.0 + img @ (np.array(_Y_WEIGHTS) / 255.0))[..., None]


def _prepare(img, img2, crop_border, test_y_channel, input_order):
    """Shared front end: shape check, 0..255 float64, border crop, optional Y."""
    if np.shape(img) != np.shape(img2):
        raise ValueError(f"image shapes differ: {np.shape(img)} vs {np.shape(img2)}")
    pair = [_to_float255(x, input_order) for x in (img, img2)]
    if crop_border:
        pair = [x[crop_border:-crop_border, crop_border:-crop_border] for x in pair]
    if test_y_channel:
        pair = [_rgb_to_y(x) for x in pair]
    return pair


def calculate_psnr(img, img2, crop_border=0, test_y_channel=False, input_order="HWC"):
    """PSNR in dB on the 0..255 scale; `inf` for identical images."""
    img, img2 = _prepare(img, img2, crop_border, test_y_channel, input_order)
    mse = np.mean((img - img2) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _ssim_map(blur, x, y):
    """Wang et al. 2004 from local Gaussian statistics; plain arithmetic, so numpy and torch share it."""
    mu1, mu2 = blur(x), blur(y)
    s11, s22, s12 = blur(x * x) - mu1**2, blur(y * y) - mu2**2, blur(x * y) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1**2 + mu2**2 + _C1) * (s11 + s22 + _C2))
    return ssim_map


def _blur_valid(a):
    """11x11 Gaussian over one channel, keeping only windows fully inside the image ('valid').

    Same as BasicSR's filter2D with the 2-D window (to 1e-13) but 5x faster, the window being separable.
    """
    return cv2.sepFilter2D(a, -1, _KERNEL, _KERNEL)[5:-5, 5:-5]


def calculate_ssim(img, img2, crop_border=0, test_y_channel=False, input_order="HWC"):
    """SSIM (11x11 Gaussian window, sigma 1.5, L=255), per channel then averaged."""
    img, img2 = _prepare(img, img2, crop_border, test_y_channel, input_order)
    if min(img.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels after cropping, got {img.shape[:2]}")
    return float(np.mean([_ssim_map(_blur_valid, img[..., c], img2[..., c]).mean() for c in range(img.shape[2])]))


# --- torch versions: (B, C, H, W) float in [0, 1] -> per-image tensor (B,), for validation loops ---

def _prepare_torch(pred, target, crop_border, test_y_channel):
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got "
                         f"{tuple(pred.shape)} vs {tuple(target.shape)}")
    # float64 like the numpy path (MPS has no float64, so compute there on the CPU).
    device = "cpu" if pred.device.type == "mps" else pred.device
    pair = [t.detach().to(device=device, dtype=torch.float64) * 255.0 for t in (pred, target)]
    if crop_border:
        pair = [t[..., crop_border:-crop_border, crop_border:-crop_border] for t in pair]
    if test_y_channel:
        if pair[0].shape[1] != 3:
            raise ValueError(f"test_y_channel needs 3-channel RGB tensors, got {pair[0].shape[1]} channel(s)")
        w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=device).view(1, 3, 1, 1) / 255.0
        pair = [16.0 + (t * w).sum(dim=1, keepdim=True) for t in pair]
    return pair


def psnr_torch(pred, target, crop_border=0, test_y_channel=False):
    """Per-image PSNR (B,) in dB, float64; matches `calculate_psnr` on the same images."""
    pred, target = _prepare_torch(pred, target, crop_border, test_y_channel)
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 gives inf, like the numpy version


def ssim_torch(pred, target, crop_border=0, test_y_channel=False):
    """Per-image SSIM (B,), float64; matches `calculate_ssim` on the same images."""
    x, y = _prepare_torch(pred, target, crop_border, test_y_channel)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels after cropping, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    k = torch.from_numpy(_KERNEL).to(x).flatten()
    kv, kh = k.view(1, 1, 11, 1).expand(c, 1, 11, 1), k.view(1, 1, 1, 11).expand(c, 1, 1, 11)

    def blur(a):  # depthwise 'valid' Gaussian as two 1-D passes (15x faster than 11x11 in float64)
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(a, kv, groups=c), kh, groups=c)

    return _ssim_map(blur, x, y).mean(dim=(1, 2, 3))
