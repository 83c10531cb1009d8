"""Classical restorations a practitioner would run without a network, each with a 3-setting grid.

The baselines of benchmarks/vs_classical.py. A user does not know the degradation's parameters, so
none of these is told them: denoisers estimate the noise level from the image
(`skimage.restoration.estimate_sigma`) and scale it by the grid's factor; deblurring assumes a
generic Gaussian PSF. All work on float32 RGB in [0, 1] and return the same.
Each grid was picked to bracket the best setting on the held-out photos: generous to the baselines,
which is the side to err on when they are the bar colora must clear.
"""
import cv2
import numpy as np
from skimage import restoration

from colora.inference.refine import guided_filter


# ---- guided filter (He et al. 2010; colora.inference.refine has it) ---------------------------
def _grey(x):
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)


def guided_self(x, r, eps):
    """Each channel smoothed with itself as guide: thin bright streaks fall below the edge scale."""
    return np.stack([guided_filter(x[..., c], x[..., c], r, eps) for c in range(3)], -1)


# ---- dark channel prior dehazing (He, Sun, Tang 2009) with guided-filter refinement ------------
def dark_channel(x, patch):
    return cv2.erode(x.min(axis=2), cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch)))


def dehaze_dcp(x, omega=0.95, patch=15, t0=0.1, r=None, eps=1e-3):
    """Airlight from the brightest 0.1 % of the dark channel, transmission 1 - omega dark(I / A)
    refined by a guided filter on the grey image, J = (I - A) / max(t, t0) + A."""
    h, w = x.shape[:2]
    dark = dark_channel(x, patch)
    n = max(int(h * w * 0.001), 1)
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    a = x.reshape(-1, 3)[idx].max(axis=0).clip(0.05, 1.0)  # per channel, among the haziest pixels
    t = 1.0 - omega * dark_channel((x / a).astype(np.float32), patch)
    t = guided_filter(_grey(x), t, r or max(h, w) // 10, eps)
    t = np.clip(t, t0, 1.0)[..., None]
    return np.clip((x - a) / t + a, 0, 1).astype(np.float32)


# ---- denoising ---------------------------------------------------------------------------------
def _sigma(x):
    return float(np.mean(restoration.estimate_sigma(x, channel_axis=-1)))


def wavelet(x, k):
    out = restoration.denoise_wavelet(x, sigma=k * _sigma(x), wavelet="db2", method="BayesShrink",
                                      mode="soft", convert2ycbcr=True, channel_axis=-1, rescale_sigma=True)
    return np.clip(out, 0, 1).astype(np.float32)


def nl_means(x, k):
    u8 = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    h = max(k * _sigma(x) * 255, 1.0)
    out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
    return out.astype(np.float32) / 255.0


def bilateral(x, k):
    s = _sigma(x)
    return np.clip(cv2.bilateralFilter(x, 9, k * 2 * s + 1e-3, 3.0), 0, 1)


# ---- deblurring (the PSF is unknown to a user: assume a generic Gaussian) ----------------------
def gaussian_psf(sigma):
    r = int(np.ceil(3 * sigma))
    k = cv2.getGaussianKernel(2 * r + 1, sigma)
    return (k @ k.T).astype(np.float64)


def _per_channel_padded(x, fn, pad):
    """fn on each channel of a reflect-padded copy (FFT methods assume a periodic image)."""
    p = cv2.copyMakeBorder(x, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    out = np.stack([fn(p[..., c].astype(np.float64)) for c in range(3)], -1)
    return np.clip(out[pad:-pad, pad:-pad], 0, 1).astype(np.float32)


def wiener(x, sigma, balance=0.01):
    psf = gaussian_psf(sigma)
    return _per_channel_padded(x, lambda c: restoration.wiener(c, psf, balance), psf.shape[0])


def richardson_lucy(x, iters, sigma=1.0):
    psf = gaussian_psf(sigma)
    return _per_channel_padded(x, lambda c: restoration.richardson_lucy(c, psf, num_iter=iters), psf.shape[0])


def unsharp(x, amount, radius=2.0):
    soft = cv2.GaussianBlur(x, (0, 0), radius)
    return np.clip(x + amount * (x - soft), 0, 1)


def median(x, ksize):
    u8 = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    return cv2.medianBlur(u8, ksize).astype(np.float32) / 255.0


def identity(x, _):
    return x


# task -> method -> (function(x, setting), the 3 settings, what the setting means)
_RAIN = {
    "guided filter": (lambda x, s: guided_self(x, *s), [(1, 0.01), (2, 0.01), (4, 0.02)], "(radius, eps)"),
    "median filter": (median, [3, 5, 7], "kernel size"),
}
METHODS = {
    "noise": {
        "wavelet BayesShrink": (wavelet, [0.75, 1.0, 1.5], "x estimated sigma"),
        "non-local means": (nl_means, [0.5, 0.6, 0.8], "h = k x estimated sigma"),
        "bilateral": (bilateral, [1.0, 2.0, 3.0], "sigmaColor = k x 2 x estimated sigma"),
    },
    "blur": {
        "Wiener": (wiener, [0.7, 1.0, 1.4], "Gaussian PSF sigma (balance 0.01)"),
        "Richardson-Lucy": (richardson_lucy, [5, 10, 20], "iterations (Gaussian PSF sigma 1.0)"),
        "unsharp mask": (unsharp, [0.25, 0.5, 1.0], "amount (radius 2)"),
    },
    "haze": {
        "dark channel prior": (lambda x, w: dehaze_dcp(x, omega=w), [0.8, 0.9, 0.95], "omega"),
    },
    "rain": _RAIN,
    "raindrop": _RAIN,
    "rain_raindrop": _RAIN,
    "clean": {"identity": (identity, [None], "")},
}
