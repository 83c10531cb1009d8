"""Noise: Real-ESRGAN's Gaussian and Poisson noise, signal-dependent Poisson–Gaussian noise in
display space, and a camera (Poisson–Gaussian in linear light) model.

All noise fields are drawn inside `apply` from `np.random.default_rng(params["seed"])`, so a
recorded recipe replays byte-identically. "Grey" noise is one field shared by the three channels
(luminance-only noise); otherwise each channel gets its own (colour noise).
"""
import numpy as np

from colora.degradations.base import DegradationOp, register_op

# Reference count for the Poisson model: photons at white. Real-ESRGAN uses
# 2**ceil(log2(number of distinct values)), i.e. 256 for a typical 8-bit photo; a float image has
# no meaningful number of distinct values, so we fix the 8-bit case.
POISSON_LEVELS = 256.0
LUMA = np.float32([0.299, 0.587, 0.114])


class _GreyOrColour(DegradationOp):
    """Adds a boolean `grey` param, True with probability `p_grey` (0.4: Real-ESRGAN)."""

    uses_seed = True
    p_grey = 0.4

    def sample(self, rng):
        params = super().sample(rng)
        params["grey"] = bool(rng.random() < self.p_grey)
        return params


class _ChannelCorrelated(_GreyOrColour):
    """Grey (p 0.3), colour (independent channels) or, with p `p_correlated`, channel-correlated:
    `correlation` r ~ U(0.2, 0.9) is the correlation between any two channels' noise, as in a
    camera's demosaicked, colour-matrixed output. Recorded as `grey` + `correlation` (0 = none)."""

    p_grey, p_correlated = 0.3, 0.3

    def sample(self, rng):
        params = super().sample(rng)
        correlated = not params["grey"] and rng.random() < self.p_correlated / (1 - self.p_grey)
        params["correlation"] = float(rng.uniform(0.2, 0.9)) if correlated else 0.0
        return params


def unit_noise(rng, shape, grey, correlation=0.0):
    """A float32 standard-normal field of `shape` (H, W, 3): one field for all channels when `grey`,
    else per-channel fields whose pairwise correlation is `correlation` (0 = independent)."""
    if grey:
        return rng.standard_normal(shape[:2] + (1,), dtype=np.float32)
    if not correlation:
        return rng.standard_normal(shape, dtype=np.float32)
    shared = rng.standard_normal(shape[:2] + (1,), dtype=np.float32)
    own = rng.standard_normal(shape, dtype=np.float32)
    return np.float32(np.sqrt(correlation)) * shared + np.float32(np.sqrt(1 - correlation)) * own


@register_op
class GaussianNoise(_ChannelCorrelated):
    """Additive white Gaussian noise of std `sigma`/255 (sigma on the 0–255 scale), grey (p 0.3),
    colour (p 0.4) or channel-correlated (p 0.3; see `_ChannelCorrelated`).
    sigma 1–50: Real-ESRGAN's first-order 1–30, widened to the usual denoising benchmarks' σ 50."""

    name = "gaussian_noise"
    ranges = {"sigma": (1.0, 50.0)}
    limits = {"sigma": (0.0, None)}

    def _apply(self, img, params):
        rng = np.random.default_rng(params["seed"])
        noise = unit_noise(rng, img.shape, params["grey"], params.get("correlation", 0.0))
        return img + noise * np.float32(params["sigma"] / 255.0)


@register_op
class PoissonGaussianNoise(_ChannelCorrelated):
    """Signal-dependent noise in display space, the heteroscedastic Gaussian approximation of the
    Poisson–Gaussian model (Foi et al., TIP 2008):  var(x) = (sigma/255)² · (f · x/0.5 + 1 − f).
    `sigma` is the std at mid-grey on the 0–255 scale; `shot` = f is the share of that variance
    that grows with the signal (0: plain AWGN, 1: pure shot noise, zero in black). x is each
    channel, or the BT.601 luma for grey noise; grey / colour / channel-correlated as in
    `_ChannelCorrelated`. sigma 5–50, shot 0.2–1: our choice (covers σ 5–50 of the benchmarks)."""

    name = "poisson_gaussian_noise"
    ranges = {"sigma": (5.0, 50.0), "shot": (0.2, 1.0)}
    limits = {"sigma": (0.0, None), "shot": (0.0, 1.0)}

    def _apply(self, img, params):
        rng = np.random.default_rng(params["seed"])
        x = img @ LUMA[:, None] if params["grey"] else img
        f = np.float32(params["shot"])
        std = np.float32(params["sigma"] / 255.0) * np.sqrt(np.clip(f * x / 0.5 + (1 - f), 0.0, None))
        return img + std * unit_noise(rng, img.shape, params["grey"], params["correlation"])


@register_op
class PoissonNoise(_GreyOrColour):
    """Shot noise, Real-ESRGAN style: n = (Poisson(v·L)/L − v)·scale with L = 256 photons at white,
    so its std at value v is scale·sqrt(v/256) (about 16/255·scale at white, zero in black).
    Colour: v is each channel. Grey: v is the BT.601 luma, one field added to all channels.
    scale 0.05–3: Real-ESRGAN (first order); grey with p 0.4: Real-ESRGAN."""

    name = "poisson_noise"
    ranges = {"scale": (0.05, 3.0)}
    limits = {"scale": (0.0, None)}

    def _apply(self, img, params):
        rng = np.random.default_rng(params["seed"])
        v = img @ LUMA[:, None] if params["grey"] else img
        v = np.clip(v, 0.0, 1.0)
        noise = rng.poisson(v * POISSON_LEVELS) / POISSON_LEVELS - v
        return img + (noise * params["scale"]).astype(np.float32)


def srgb_to_linear(x):
    """The sRGB transfer function (≈ a 2.2 power, with a linear toe near black)."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


@register_op
class CameraNoise(DegradationOp):
    """Sensor noise as a camera makes it (our choice; SIDD-like real noise for the `noise` task).

    A sensor's noise lives in linear light and depends on the signal: the Poisson–Gaussian model
    (Foi et al., TIP 2008; the same model as Brooks et al.'s "Unprocessing", CVPR 2019):
        L = linear(img),  L' = L + N(0, shot·L + read²),  out = sRGB(clip(L', 0, 1))
    `shot` is the variance per unit signal (≈ 1 / photo-electrons at white), `read` the std of the
    signal-independent read noise. Independent per channel (colour noise). Re-applying the gamma
    makes the noise strongest, relative to the signal, in the shadows, as in real photos. We use the
    exact sRGB curve (≈ 2.2 power) rather than a pure power: its linear toe keeps the slope at black
    finite. Not modelled: demosaicking (spatially correlated noise), which later blur/JPEG ops mimic.
    shot 0.001–0.02, read 0.002–0.02: our choice (clean to high-ISO smartphone)."""

    name = "camera_noise"
    ranges = {"shot": (0.001, 0.02), "read": (0.002, 0.02)}
    limits = {"shot": (0.0, None), "read": (0.0, None)}
    uses_seed = True

    def _apply(self, img, params):
        rng = np.random.default_rng(params["seed"])
        linear = srgb_to_linear(img.astype(np.float64))
        std = np.sqrt(params["shot"] * linear + params["read"] ** 2)
        return linear_to_srgb(linear + std * rng.standard_normal(img.shape))
