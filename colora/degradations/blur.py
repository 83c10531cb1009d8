"""Blur: Real-ESRGAN's Gaussian-family kernels, a defocus disk and motion blur.

Every op builds a 2-D kernel (`op.kernel(params)`, sums to 1) and filters each channel with
`cv2.filter2D`, border reflect. A kernel larger than the image is centre-cropped to the largest odd
size that fits (then renormalised), so any image of at least 16×16 works.

Angle convention (shared with `weather.rain`): degrees counter-clockwise from the image's +x axis
(pointing right) as seen on screen, so 0 = horizontal, 90 = vertical. Array rows grow downwards,
so a direction at angle a is the step (dx, dy_row) = (cos a, −sin a). Lines are undirected: 0–180°
covers every orientation.
"""
import cv2
import numpy as np

from colora.degradations.base import DegradationOp, register_op
from colora.errors import OptionsError


def filter_image(img, kernel):
    """Convolve each channel with `kernel` (cropped to fit the image), border reflect."""
    h, w = img.shape[:2]
    fit = min(h, w) - 1 + min(h, w) % 2  # largest odd size <= min(h, w)
    if kernel.shape[0] > fit:  # kernels here are square and odd-sized
        c = (kernel.shape[0] - fit) // 2
        cropped = kernel[c:c + fit, c:c + fit]
        kernel = cropped if cropped.sum() > 0 else kernel  # a curled path may miss the centre crop
    kernel = (kernel / kernel.sum()).astype(np.float32)
    # filter2D correlates; flipping the kernel makes it a true convolution (matters for trajectories).
    return cv2.filter2D(img, -1, kernel[::-1, ::-1], borderType=cv2.BORDER_REFLECT)


def kernel_axes(size, theta):
    """Pixel offsets of a size×size grid projected on the axis at `theta` degrees and its normal."""
    r = size // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    c, s = np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))
    return x * c - y * s, x * s + y * c  # along (cos, −sin) on screen, across it


def splat_points(xs, ys):
    """Normalised kernel from sub-pixel points (x right, y down, origin = kernel centre), bilinear."""
    r = int(np.ceil(max(np.abs(xs).max(), np.abs(ys).max()))) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    x, y = xs + r, ys + r
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    return k / k.sum()


def linear_motion_kernel(length, angle):
    """A straight, anti-aliased line of `length` px at `angle` degrees, centred."""
    t = np.linspace(-length / 2, length / 2, int(np.ceil(length)) * 4 + 1)
    a = np.deg2rad(angle)
    return splat_points(t * np.cos(a), -t * np.sin(a))


def trajectory_motion_kernel(length, angle, rng, steps=64, turn=0.25, jerk=0.0):
    """A camera-shake path: a random walk of `length` px starting at `angle`, heading jittered by
    N(0, `turn` rad) per step; with `jerk` > 0 each step also turns sharply (N(0, 1.2 rad)) with
    probability `jerk` and the speed varies along the path (log-normal steps, so the exposure
    lingers where the camera slows), after Boracchi & Foi's random trajectories (TIP 2012).
    Centred on its centroid so the image is blurred but not shifted."""
    turns = rng.normal(0.0, turn, steps)
    speed = np.ones(steps)
    if jerk > 0:
        turns += (rng.random(steps) < jerk) * rng.normal(0.0, 1.2, steps)
        speed = rng.lognormal(0.0, 0.5, steps)
        speed /= speed.mean()
    heading = np.deg2rad(angle) + np.cumsum(turns)
    step = length / steps * speed
    xs, ys = np.cumsum(step * np.cos(heading)), np.cumsum(-step * np.sin(heading))
    xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys])
    return splat_points(xs - xs.mean(), ys - ys.mean())


class _KernelBlur(DegradationOp):
    """Shared apply: filter with `self.kernel(params)`; subclasses define the unnormalised `_kernel`."""

    def kernel(self, params):
        """The blur kernel (square, odd-sized, non-negative, sums to 1)."""
        k = self._kernel(params)
        return k / k.sum()

    def _kernel(self, params):
        raise NotImplementedError

    def _apply(self, img, params):
        return filter_image(img, self.kernel(params))


class _GaussianFamily(_KernelBlur):
    integer = ("kernel_size",)
    limits = {"kernel_size": (3, None), "sigma": (0.01, None), "sigma_x": (0.01, None),
              "sigma_y": (0.01, None), "beta": (0.1, None)}

    def _check_range(self, param, value):
        lo, hi = super()._check_range(param, value)
        if param == "kernel_size" and lo == hi and lo % 2 == 0:
            raise OptionsError(f"range for {self.name}.kernel_size holds no odd size: ({lo}, {hi})")
        return lo, hi

    def sample(self, rng):
        params = super().sample(rng)
        lo, hi = self.ranges["kernel_size"]  # odd sizes only: 7, 9, ..., 21
        params["kernel_size"] = 2 * int(rng.integers((lo - 1) // 2 + (lo % 2 == 0), (hi - 1) // 2 + 1)) + 1
        return params

    def _quadratic(self, params):
        """x^T Σ^-1 x on the kernel grid (isotropic when only `sigma` is given)."""
        sx = params.get("sigma_x", params.get("sigma"))
        sy = params.get("sigma_y", sx)
        u, v = kernel_axes(params["kernel_size"], params.get("theta", 0.0))
        return (u / sx) ** 2 + (v / sy) ** 2


@register_op
class GaussianBlur(_GaussianFamily):
    """Isotropic Gaussian blur. kernel_size 7–21 (odd), sigma 0.2–3 px: Real-ESRGAN."""

    name = "gaussian_blur"
    ranges = {"kernel_size": (7, 21), "sigma": (0.2, 3.0)}

    def _kernel(self, params):
        return np.exp(-0.5 * self._quadratic(params))


@register_op
class AnisoGaussianBlur(_GaussianFamily):
    """Anisotropic Gaussian blur: sigma_x along the axis at `theta` degrees, sigma_y across it.
    kernel_size 7–21, sigma_x/sigma_y 0.2–3, rotation 0–180° (Real-ESRGAN's ±π, undirected)."""

    name = "aniso_gaussian_blur"
    ranges = {"kernel_size": (7, 21), "sigma_x": (0.2, 3.0), "sigma_y": (0.2, 3.0), "theta": (0.0, 180.0)}

    def _kernel(self, params):
        return np.exp(-0.5 * self._quadratic(params))


@register_op
class GeneralizedGaussianBlur(_GaussianFamily):
    """Generalised Gaussian exp(−½ (xᵀΣ⁻¹x)^β): β < 1 peaky with long tails, β > 1 box-like.
    kernel_size 7–21, sigma 0.2–3, theta 0–180°, beta 0.5–4: Real-ESRGAN."""

    name = "generalized_gaussian_blur"
    ranges = {"kernel_size": (7, 21), "sigma_x": (0.2, 3.0), "sigma_y": (0.2, 3.0),
              "theta": (0.0, 180.0), "beta": (0.5, 4.0)}

    def _kernel(self, params):
        return np.exp(-0.5 * self._quadratic(params) ** params["beta"])


@register_op
class PlateauBlur(_GaussianFamily):
    """Plateau kernel 1 / (1 + (xᵀΣ⁻¹x)^β): flat top, heavy tails.
    kernel_size 7–21, sigma 0.2–3, theta 0–180°, beta 1–2: Real-ESRGAN."""

    name = "plateau_blur"
    ranges = {"kernel_size": (7, 21), "sigma_x": (0.2, 3.0), "sigma_y": (0.2, 3.0),
              "theta": (0.0, 180.0), "beta": (1.0, 2.0)}

    def _kernel(self, params):
        return 1.0 / (1.0 + self._quadratic(params) ** params["beta"])


@register_op
class DefocusBlur(_KernelBlur):
    """Out-of-focus blur: a uniform disk of `radius` px with a 1-px anti-aliased edge
    (weight = clip(radius + ½ − distance, 0, 1)), so small radii change smoothly.
    radius 1–6 px: our choice (mild to strong defocus on 256-px crops)."""

    name = "defocus_blur"
    ranges = {"radius": (1.0, 6.0)}
    limits = {"radius": (0.5, None)}

    def _kernel(self, params):
        r = params["radius"]
        u, v = kernel_axes(2 * int(np.ceil(r + 0.5)) + 1, 0.0)
        return np.clip(r + 0.5 - np.hypot(u, v), 0.0, 1.0)


@register_op
class MotionBlur(_KernelBlur):
    """Motion blur, recorded as `kind`: "linear" (a straight line of `length` px at `angle`, see
    the module's angle convention) or, with probability `p_trajectory`, "trajectory" (a random
    camera-shake path of the same length starting at `angle`; see `trajectory_motion_kernel`),
    whose heading wanders by `turn` rad per step (smooth arcs to tight curls) and, in half of the
    trajectories, jerks with probability `jerk` per step at a varying speed.
    length 5–25 px, angle 0–180°: our choice (GoPro/RealBlur-like shake on 256-px crops);
    turn 0.05–0.5, jerk 0.02–0.1: our choice. Params without `turn` replay the first version's
    path (turn 0.25, no jerks)."""

    name = "motion_blur"
    ranges = {"length": (5.0, 25.0), "angle": (0.0, 180.0), "turn": (0.05, 0.5), "jerk": (0.02, 0.1)}
    limits = {"length": (1.0, None), "turn": (0.0, None), "jerk": (0.0, 1.0)}
    uses_seed = True
    p_trajectory, p_jerk = 0.6, 0.5

    def sample(self, rng):
        params = super().sample(rng)
        params["kind"] = "trajectory" if rng.random() < self.p_trajectory else "linear"
        if params["kind"] == "linear":
            del params["turn"], params["jerk"]
        elif rng.random() >= self.p_jerk:
            params["jerk"] = 0.0
        return params

    def _kernel(self, params):
        if params["kind"] == "linear":
            return linear_motion_kernel(params["length"], params["angle"])
        if params["kind"] == "trajectory":
            rng = np.random.default_rng(params["seed"])
            return trajectory_motion_kernel(params["length"], params["angle"], rng,
                                            turn=params.get("turn", 0.25), jerk=params.get("jerk", 0.0))
        raise OptionsError(f"motion_blur.kind must be 'linear' or 'trajectory', got {params['kind']!r}")
