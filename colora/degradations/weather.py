"""Weather: rain streaks, raindrops on glass, haze (the CoLoRA tasks Rain, Raindrop, Haze).

Geometry (streak seeds, drop shapes, depth maps) is drawn inside `apply` from
`np.random.default_rng(params["seed"])`; `sample` records only the per-image numbers.
Angles follow `blur`'s convention: degrees counter-clockwise from +x on screen, 90 = vertical.
"""
import cv2
import numpy as np

from colora.degradations.base import DegradationOp, register_op
from colora.degradations.blur import linear_motion_kernel

REFERENCE_SIZE = 256.0  # raindrop radii are in px at this short side, scaled to the image


@register_op
class Rain(DegradationOp):
    """Rain streaks (our choice, in the spirit of the usual synthetic-rain layers).

    A sparse seed map (each pixel a seed with probability `density`, intensity U(0.4, 1)) is drawn
    on a canvas padded by the streak length (so streaks also enter from outside the frame),
    smeared along a line of `length` px at `angle` (90 = vertical; 60–120 leans either way),
    dilated to `width` px, scaled by `brightness` and screen-blended: out = 1 − (1 − img)(1 − layer).
    Screen blending only brightens, as light scattered by drops does.
    density 0.002–0.02, length 10–40 px, angle 60–120°, width 1–2 px, brightness 0.5–1: our choice.
    """

    name = "rain"
    ranges = {"density": (0.002, 0.02), "length": (10.0, 40.0), "angle": (60.0, 120.0),
              "width": (1, 2), "brightness": (0.5, 1.0)}
    integer = ("width",)
    limits = {"density": (0.0, 1.0), "length": (1.0, None), "width": (1, None), "brightness": (0.0, 1.0)}
    uses_seed = True

    def layer(self, shape, params):
        """The grey rain layer in [0, 1] for an image of `shape` (H, W, ...)."""
        rng = np.random.default_rng(params["seed"])
        kernel = linear_motion_kernel(params["length"], params["angle"])
        kernel = (kernel / kernel.max()).astype(np.float32)  # a lone seed -> a streak of peak 1
        pad = kernel.shape[0] // 2
        h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
        seeds = (rng.random((h, w)) < params["density"]) * rng.uniform(0.4, 1.0, (h, w))
        streaks = cv2.filter2D(seeds.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        streaks = streaks[pad:pad + shape[0], pad:pad + shape[1]]
        if params["width"] > 1:
            streaks = cv2.dilate(streaks, np.ones((params["width"],) * 2, np.uint8))
        return np.clip(streaks, 0.0, 1.0) * np.float32(params["brightness"])

    def _apply(self, img, params):
        layer = self.layer(img.shape, params)[..., None]
        return 1.0 - (1.0 - img) * (1.0 - layer)


@register_op
class Raindrop(DegradationOp):
    """Raindrops on the glass in front of the lens (our choice).

    `count` drops, each an ellipse (radius drawn in `radius` = [min, max] px at a 256-px short
    side, scaled to the image; axis ratio 0.75–1.3; rotation ±30°) at a random place. A drop is a
    small lens: inside it we show the background inverted and minified by `zoom` (more toward its
    rim, like a fisheye), taken from a defocused copy of the image (the camera focuses on the scene,
    not on the glass). Soft edges (alpha falls off over the outer ~15 % and is blurred), a faint
    bright rim and a specular highlight toward the upper left. Outside the drops nothing changes.
    count 10–40, radius 3–20 px, zoom 1.5–3: our choice. `radius` is recorded as the [min, max]
    pair each drop's radius is drawn from at apply time.
    """

    name = "raindrop"
    ranges = {"count": (10, 40), "radius": (3.0, 20.0), "zoom": (1.5, 3.0)}
    integer = ("count",)
    limits = {"count": (0, None), "radius": (0.5, None), "zoom": (0.1, None)}
    uses_seed = True

    def sample(self, rng):
        params = super().sample(rng)
        params["radius"] = list(self.ranges["radius"])
        return params

    def _apply(self, img, params):
        h, w = img.shape[:2]
        rng = np.random.default_rng(params["seed"])
        scale = min(h, w) / REFERENCE_SIZE
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = xs.copy(), ys.copy()
        alpha, rim, spot = (np.zeros((h, w), np.float32) for _ in range(3))
        for _ in range(params["count"]):
            r = max(1.5, rng.uniform(*params["radius"]) * scale)
            rx, ry = r, r * rng.uniform(0.75, 1.3)
            rot = np.deg2rad(rng.uniform(-30.0, 30.0))
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            ext = max(rx, ry) + 2
            x0, x1 = int(max(0, cx - ext)), int(min(w, cx + ext + 1))
            y0, y1 = int(max(0, cy - ext)), int(min(h, cy + ext + 1))
            if x0 >= x1 or y0 >= y1:
                continue
            box = np.s_[y0:y1, x0:x1]
            dx, dy = xs[box] - cx, ys[box] - cy
            u = dx * np.cos(rot) + dy * np.sin(rot)
            v = -dx * np.sin(rot) + dy * np.cos(rot)
            rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
            a = np.clip((1.0 - rho) / max(0.15, 1.5 / r), 0.0, 1.0)
            top = a > alpha[box]  # a later drop covers an earlier one where it is more opaque
            zoom = params["zoom"] * (1.0 + 0.5 * rho ** 2)
            map_x[box] = np.where(top, cx - dx * zoom, map_x[box])
            map_y[box] = np.where(top, cy - dy * zoom, map_y[box])
            alpha[box] = np.maximum(alpha[box], a)
            rim[box] = np.maximum(rim[box], np.exp(-(((rho - 0.85) / 0.1) ** 2)))
            hx, hy = cx - 0.3 * rx, cy - 0.4 * ry
            glint = np.exp(-((xs[box] - hx) ** 2 + (ys[box] - hy) ** 2) / (2 * (0.15 * r) ** 2))
            spot[box] = np.maximum(spot[box], glint * (rho < 1))
        defocused = cv2.GaussianBlur(np.ascontiguousarray(img), (0, 0), 1.0 + 2.0 * scale)
        seen = cv2.remap(defocused, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)[..., None]
        out = img * (1.0 - alpha) + seen * alpha
        light = np.clip(0.25 * rim * alpha[..., 0] + 0.8 * spot, 0.0, 1.0)[..., None]
        return 1.0 - (1.0 - out) * (1.0 - light)


@register_op
class Haze(DegradationOp):
    """Haze by the atmospheric scattering model (Koschmieder 1924; as in He et al., "Single image
    haze removal using dark channel prior", CVPR 2009):  I = J·t + A·(1 − t),  t = exp(−β·d).

    d in [0, 1] is a smooth random depth map: three octaves of low-frequency noise (3, 6, 12 cells
    per side, bicubically upsampled, weights 1, ½, ¼), normalised, then mixed with a vertical
    gradient (top = far) with weight `gradient`. A is the airlight, recorded as an RGB list:
    brightness `airlight` with a per-channel tint of up to ±`tint` (0.05).
    beta 0.5–2.5, airlight 0.7–1.0, gradient 0–0.7: our choice.
    """

    name = "haze"
    ranges = {"beta": (0.5, 2.5), "airlight": (0.7, 1.0), "gradient": (0.0, 0.7)}
    limits = {"beta": (0.0, None), "airlight": (0.0, 1.0), "gradient": (0.0, 1.0)}
    uses_seed = True
    tint = 0.05

    def sample(self, rng):
        params = super().sample(rng)
        a = params["airlight"]
        params["airlight"] = [float(np.clip(a + rng.uniform(-self.tint, self.tint), 0, 1)) for _ in range(3)]
        return params

    def depth(self, shape, params):
        """The depth map d in [0, 1] (H×W float32) for an image of `shape`."""
        h, w = shape[:2]
        rng = np.random.default_rng(params["seed"])
        d = np.zeros((h, w), np.float32)
        for cells, weight in ((3, 1.0), (6, 0.5), (12, 0.25)):
            noise = rng.random((cells, cells)).astype(np.float32)
            d += weight * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        d = (d - d.min()) / max(float(d.max() - d.min()), 1e-6)
        rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None]
        g = np.float32(params["gradient"])
        return (1 - g) * d + g * rows

    def _apply(self, img, params):
        t = np.exp(-np.float32(params["beta"]) * self.depth(img.shape, params))[..., None]
        airlight = np.asarray(params["airlight"], np.float32)
        return img * t + airlight * (1.0 - t)
