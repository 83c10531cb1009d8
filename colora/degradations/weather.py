"""Weather: rain streaks, raindrops on glass, haze (the CoLoRA tasks Rain, Raindrop, Haze).

Each op draws a wide variety per sample (streak shapes, depth layers and blend modes; drop sizes,
shapes, refraction and focus; depth maps and airlight colours), so that a network trained on them
learns the degradation rather than one renderer. `sample` records every per-image choice in the
params; per-streak and per-drop geometry, depth-map noise and the like are drawn inside `apply`
from `np.random.default_rng(params["seed"])`, so a recipe replays byte-identically.
Angles follow `blur`'s convention: degrees counter-clockwise from +x on screen, 90 = vertical.
Params recorded by the first versions of these ops (without the keys named in `legacy.py`) are
replayed by `legacy.py`, byte for byte.
"""
import cv2
import numpy as np

import colora.degradations.legacy as legacy
from colora.degradations.base import DegradationOp, register_op
from colora.degradations.blur import kernel_axes
from colora.errors import OptionsError

REFERENCE_SIZE = 256.0  # raindrop radii and haze-free sizes are in px at this short side
LUMA = np.float32([0.299, 0.587, 0.114])


def loguniform(rng, lo, hi):
    """A draw spread evenly over orders of magnitude in [lo, hi] (uniform when lo <= 0)."""
    if lo <= 0 or hi <= lo:
        return float(rng.uniform(lo, hi))
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def pick(rng, weights):
    """One key of `weights` (name -> relative weight), drawn in proportion to its weight."""
    names = list(weights)
    p = np.asarray([weights[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _check_choice(op, key, value, choices):
    if value not in choices:
        raise OptionsError(f"{op}.{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def ramp(shape, angle):
    """A linear ramp in [0, 1] over an H×W grid, rising toward `angle` (90 = toward the top)."""
    h, w = shape[:2]
    a = np.deg2rad(angle)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    p = xs * np.float32(np.cos(a)) - ys * np.float32(np.sin(a))
    return (p - p.min()) / max(float(p.max() - p.min()), 1e-6)


# ---- rain streaks ------------------------------------------------------------------------------
RAIN_SHAPES = ("line", "tapered", "motion")
BLENDS = ("screen", "add", "max")


def streak_kernel(shape, length, width, angle):
    """One rain streak of `length` px along `angle`, peak 1, as a square odd-sized float32 kernel.

    line     an anti-aliased stroke of constant brightness and `width` (sub-pixel widths dim it)
    tapered  an elongated drop: a bright head at the lower end, fading and narrowing upward
    motion   a motion-blurred stroke: soft ends, 1.8x as wide and Gaussian across
    """
    half = int(np.ceil(length / 2 + 2 * width + 2))
    u, v = kernel_axes(2 * half + 1, angle)  # u: along the streak (positive = up on screen)
    ends = np.clip(length / 2 + 0.5 - np.abs(u), 0.0, 1.0)
    t = np.clip((length / 2 - u) / length, 0.0, 1.0)  # 0 at the top end, 1 at the lower end
    if shape == "line":
        profile, wide = 1.0, np.full_like(u, width)
    elif shape == "tapered":
        profile, wide = t ** 1.5, width * (0.3 + 0.7 * t)
    elif shape == "motion":
        profile, wide = np.sin(np.pi * t) ** 0.5, np.full_like(u, 1.8 * width)
    else:
        raise OptionsError(f"rain shape must be one of {', '.join(RAIN_SHAPES)}, got {shape!r}")
    sigma = np.maximum(wide, 0.8) / 2.0
    k = ends * profile * np.exp(-0.5 * (v / sigma) ** 2) * np.minimum(wide, 1.0)
    return (k / max(float(k.max()), 1e-6) * min(float(width), 1.0)).astype(np.float32)


@register_op
class Rain(DegradationOp):
    """Rain streaks in 1–`layers` depth layers, blended onto the image (our choice).

    Per sample: `layers` layers (1–3); the nearest has depth scale s = 1, the others s ~ U(0.35,
    0.8). A layer of scale s draws streak seeds with probability density/s per pixel (density is
    log-uniform, so sparse and heavy rain are equally common; per layer at most the range's max
    and at most 0.4 / (length·width), so one layer never paints over ~40 % of the image: heavy
    rain, not a white sheet), intensity U(0.3, 1), on a canvas padded so streaks also enter from
    outside the frame; half its streaks have length·s, half 0.4–0.75 of that; width·s (never
    wider than an eighth of the length); brightness·(0.45 + 0.55 s); far layers are blurred by
    1.5 (1 − s) px. Each layer has its own streak shape (line 0.4, tapered drop 0.3, motion-blurred
    stroke 0.3; see `streak_kernel`) and leans at the sample's `angle` ± 4°. Layers are
    screen-combined, tinted (white, or with p 0.5 each channel 1 − U(0, 0.15)) and blended onto
    the image by one mode per sample: screen 1 − (1 − I)(1 − R) (0.45), additive I + R (0.3) or
    lighten max(I, R) (0.25).
    With p 0.4 a veil of scattered light first lifts the image toward 0.85·tint by `veil`.
    density 0.001–0.02, length 6–50 px, angle 50–130° (near-vertical to strongly slanted),
    width 0.6–3 px, brightness 0.3–0.9, layers 1–3, veil 0–0.2: our choice (Rain100L/H-like
    light to heavy rain on 64–256-px crops). Every layer's numbers are recorded in `layers`.
    """

    name = "rain"
    ranges = {"density": (0.001, 0.02), "length": (6.0, 50.0), "angle": (50.0, 130.0),
              "width": (0.6, 3.0), "brightness": (0.3, 0.9), "layers": (1, 3), "veil": (0.0, 0.2)}
    integer = ("layers",)
    limits = {"density": (0.0, 1.0), "length": (1.0, None), "width": (0.3, None),
              "brightness": (0.0, 1.0), "layers": (1, 5), "veil": (0.0, 1.0)}
    uses_seed = True
    shapes = {"line": 0.4, "tapered": 0.3, "motion": 0.3}
    blends = {"screen": 0.45, "add": 0.3, "max": 0.25}
    p_tint, p_veil, max_cover = 0.5, 0.4, 0.4

    def sample(self, rng):
        n, angle = self.randint(rng, "layers"), self.uniform(rng, "angle")
        density = loguniform(rng, *self.ranges["density"])
        length, width = self.uniform(rng, "length"), self.uniform(rng, "width")
        brightness = self.uniform(rng, "brightness")
        lo, hi = self.ranges["angle"]
        layers = []
        for i, s in enumerate([1.0] + sorted(rng.uniform(0.35, 0.8, n - 1).tolist(), reverse=True)):
            w_s = max(0.3, min(width * s, length * s / 8))
            cover = self.max_cover / (max(1.0, length * s) * max(1.0, w_s))
            layers.append({
                "shape": pick(rng, self.shapes), "density": min(self.ranges["density"][1], density / s, cover),
                "length": max(1.0, length * s), "width": w_s,
                "angle": float(np.clip(angle + (rng.uniform(-4, 4) if i else 0.0), lo, hi)),
                "brightness": brightness * (0.45 + 0.55 * s), "blur": 1.5 * (1.0 - s)})
        tint = [1.0 - float(rng.uniform(0, 0.15)) for _ in range(3)] if rng.random() < self.p_tint else [1.0] * 3
        veil = self.uniform(rng, "veil") if rng.random() < self.p_veil else 0.0
        return {"layers": layers, "blend": pick(rng, self.blends), "tint": tint, "veil": veil,
                "seed": int(rng.integers(0, 2**31 - 1))}

    @staticmethod
    def layer(shape, layer, rng):
        """One depth layer's grey streak map in [0, 1] (H×W float32) for an image of `shape`."""
        long_k = streak_kernel(layer["shape"], layer["length"], layer["width"], layer["angle"])
        short_len = layer["length"] * rng.uniform(0.4, 0.75)
        short_k = streak_kernel(layer["shape"], short_len, layer["width"], layer["angle"])
        pad = long_k.shape[0] // 2
        h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
        n = int(rng.binomial(h * w, layer["density"]))
        where = rng.integers(0, h * w, n)
        streaks = np.zeros((h, w), np.float32)
        for part, kernel in ((where[: n // 2], long_k), (where[n // 2:], short_k)):
            seeds = np.zeros(h * w, np.float32)
            seeds[part] = rng.uniform(0.3, 1.0, len(part))
            streaks += cv2.filter2D(seeds.reshape(h, w), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        streaks = streaks[pad:pad + shape[0], pad:pad + shape[1]]
        if layer["blur"] > 0.3:
            streaks = cv2.GaussianBlur(streaks, (0, 0), layer["blur"])
        return np.clip(streaks, 0.0, 1.0) * np.float32(layer["brightness"])

    def rain_map(self, shape, params):
        """All layers, screen-combined: the grey rain map in [0, 1] (H×W float32)."""
        rng = np.random.default_rng(params["seed"])
        total = np.zeros(shape[:2], np.float32)
        for layer in params["layers"]:
            total = 1.0 - (1.0 - total) * (1.0 - self.layer(shape, layer, rng))
        return total

    def _apply(self, img, params):
        if "layers" not in params:
            return legacy.rain(img, params)
        blend = _check_choice(self.name, "blend", params["blend"], BLENDS)
        tint = np.asarray(params["tint"], np.float32)
        veil = np.float32(params["veil"])
        base = img * (1.0 - veil) + veil * 0.85 * tint if veil > 0 else img
        rain = self.rain_map(img.shape, params)[..., None] * tint
        if blend == "screen":
            return 1.0 - (1.0 - base) * (1.0 - rain)
        if blend == "add":
            return base + rain
        return np.maximum(base, rain)


# ---- raindrops ---------------------------------------------------------------------------------
@register_op
class Raindrop(DegradationOp):
    """Raindrops on the glass in front of the lens (our choice).

    A drop is a small lens. Inside it we show a piece of the (defocused) background, refracted:
    taken around the drop's centre, shifted upward by `offset` radii, scaled by `zoom` (> 1 shows
    a wider area, minified; < 1 a magnified piece), growing toward the rim like a fisheye, and with
    p 0.65 `flip`ped (the inverted image a real drop lens forms). Per drop (drawn at apply time):
    radius log-uniform in the sample's [min, max] `radius` (px at a 256-px short side, scaled to
    the image; so tiny and large drops both occur), vertical elongation U(1, `elongation`),
    rotation ±20°, a wobbly outline (2nd/3rd harmonics up to 10 % of the radius), and with
    probability `trail` a sliding drop's trail above it (a thin film of 0.2–0.45 radii width,
    1.5–5 radii long, refracting little). Edges: soft alpha, darkened toward the rim by `edge`
    (total internal reflection), a specular highlight of strength `highlight` on the side of the
    sample's `light_angle` and a faint bright rim. With p 0.5 the drops themselves are out of
    focus: the drop layer is blurred by `drop_blur` px (premultiplied), turning them into blobs.
    The background seen through the drops is blurred by `blur` px. Outside the drops nothing
    changes. count 5–60 (log-uniform, then raised or capped so the drops cover about 3–60 % of
    the image),
    radius range 1.5–35 px with a per-sample [min, max] of min log-uniform in 1.5–12 and max =
    min × U(1.5, 4), zoom 0.5–3.5, offset 0–1, blur 0.5–4, drop_blur 0–2.5, edge 0–0.5,
    highlight 0–1, trail 0–0.5, elongation 1–1.8: our choice.
    """

    name = "raindrop"
    ranges = {"count": (5, 60), "radius": (1.5, 35.0), "zoom": (0.5, 3.5), "offset": (0.0, 1.0),
              "blur": (0.5, 4.0), "drop_blur": (0.0, 2.5), "edge": (0.0, 0.5), "highlight": (0.0, 1.0),
              "trail": (0.0, 0.5), "elongation": (1.0, 1.8)}
    integer = ("count",)
    limits = {"count": (0, None), "radius": (0.5, None), "zoom": (0.1, None), "offset": (0.0, None),
              "blur": (0.0, None), "drop_blur": (0.0, None), "edge": (0.0, 1.0), "highlight": (0.0, 1.0),
              "trail": (0.0, 1.0), "elongation": (1.0, None)}
    uses_seed = True
    p_flip, p_focus, min_cover, max_cover = 0.65, 0.5, 0.03, 0.6

    def sample(self, rng):
        params = super().sample(rng)
        lo, hi = self.ranges["radius"]
        r_min = loguniform(rng, lo, min(hi, max(lo, 12.0)))
        r_max = min(hi, r_min * float(rng.uniform(1.5, 4.0)))
        c_lo, c_hi = self.ranges["count"]
        count = int(round(loguniform(rng, max(c_lo, 1), c_hi))) if c_hi > 0 else 0
        mean_area = np.pi * r_min * r_max * (1 + params["elongation"]) / 2  # ≈ E[r²] of a log-uniform r
        cap = max(1, int(self.max_cover * REFERENCE_SIZE ** 2 / mean_area))
        floor = int(np.ceil(self.min_cover * REFERENCE_SIZE ** 2 / mean_area))
        count = min(max(count, floor), cap)
        params.update(count=int(np.clip(count, c_lo, c_hi)), radius=[r_min, r_max],
                      flip=bool(rng.random() < self.p_flip), light_angle=float(rng.uniform(0, 360)))
        if rng.random() < self.p_focus:
            params["drop_blur"] = 0.0
        return params

    def _apply(self, img, params):
        if "light_angle" not in params:
            return legacy.raindrop(img, params)
        h, w = img.shape[:2]
        rng = np.random.default_rng(params["seed"])
        scale = min(h, w) / REFERENCE_SIZE
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        maps = {"x": xs.copy(), "y": ys.copy(), "alpha": np.zeros((h, w), np.float32),
                "dark": np.zeros((h, w), np.float32), "light": np.zeros((h, w), np.float32)}
        sign = -1.0 if params["flip"] else 1.0
        la = np.deg2rad(params["light_angle"])
        log_lo, log_hi = np.log(params["radius"][0]), np.log(max(params["radius"]))
        for _ in range(params["count"]):
            r = max(1.0, float(np.exp(rng.uniform(log_lo, log_hi))) * scale)
            ry = r * rng.uniform(1.0, params["elongation"])
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rot = np.deg2rad(rng.uniform(-20.0, 20.0))
            wobble = (rng.uniform(0, 0.1, 2), rng.uniform(0, 2 * np.pi, 2))
            if rng.random() < params["trail"]:
                length = r * rng.uniform(1.5, 5.0)
                self._splat(maps, xs, ys, cx, cy - ry - length / 2, r * rng.uniform(0.2, 0.45), length / 2,
                            rot, None, 1.0 + 0.2 * (params["zoom"] - 1.0), sign, 0.0, 0.7, None)
            self._splat(maps, xs, ys, cx, cy, r, ry, rot, wobble, params["zoom"], sign,
                        params["offset"] * r, 1.0, (np.cos(la), -np.sin(la)))
        background = np.ascontiguousarray(img)
        if params["blur"] * scale > 0.3:
            background = cv2.GaussianBlur(background, (0, 0), params["blur"] * scale)
        seen = cv2.remap(background, maps["x"], maps["y"], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        seen = seen * (1.0 - np.float32(params["edge"]) * maps["dark"])[..., None]
        alpha = cv2.GaussianBlur(maps["alpha"], (0, 0), 0.6)[..., None]
        layer = seen * alpha
        light = np.clip(np.float32(params["highlight"]) * maps["light"], 0.0, 1.0)
        sigma = params["drop_blur"] * scale
        if sigma > 0.3:
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)[..., None]
            layer = cv2.GaussianBlur(layer, (0, 0), sigma)
            light = cv2.GaussianBlur(light, (0, 0), sigma)
        out = img * (1.0 - alpha) + layer
        return 1.0 - (1.0 - out) * (1.0 - light[..., None])

    @staticmethod
    def _splat(maps, xs, ys, cx, cy, rx, ry, rot, wobble, zoom, sign, lift, strength, light_dir):
        """Draw one drop (or trail) into `maps`: refraction source coords, alpha, rim darkness, light."""
        frame = legacy.drop_frame(xs, ys, cx, cy, max(rx, ry) * 1.15 + 2, rot)
        if frame is None:
            return
        box, dx, dy, u, v = frame
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        if wobble is not None:
            phi = np.arctan2(v, u)
            (a2, a3), (p2, p3) = wobble
            rho = rho / (1.0 + a2 * np.cos(2 * phi + p2) + a3 * np.cos(3 * phi + p3))
        a = np.clip((1.0 - rho) / max(0.12, 1.5 / min(rx, ry)), 0.0, 1.0) * strength
        alpha = maps["alpha"][box]  # views: the maps are updated in place
        top = a > alpha  # a later drop covers an earlier one where it is more opaque
        z = zoom * (1.0 + 0.5 * rho ** 2)
        np.copyto(maps["x"][box], cx + sign * dx * z, where=top)
        np.copyto(maps["y"][box], cy - lift + sign * dy * z, where=top)
        np.maximum(alpha, a, out=alpha)
        inside = rho < 1
        np.copyto(maps["dark"][box], np.clip((rho - 0.5) / 0.5, 0, 1) ** 2 * inside, where=top)
        if light_dir is not None:
            hx, hy = cx + 0.45 * rx * light_dir[0], cy + 0.45 * ry * light_dir[1]
            r = min(rx, ry)
            spot = np.exp(-((xs[box] - hx) ** 2 + (ys[box] - hy) ** 2) / (2 * (0.14 * r + 0.3) ** 2))
            rim = 0.25 * np.exp(-(((rho - 0.88) / 0.08) ** 2))
            light = maps["light"][box]
            np.maximum(light, (spot + rim) * inside, out=light)


# ---- haze --------------------------------------------------------------------------------------
AIRLIGHT_COLOURS = {"grey": 0.4, "blue": 0.3, "yellow": 0.3}


@register_op
class Haze(DegradationOp):
    """Haze by the atmospheric scattering model (Koschmieder 1924; as in He et al., "Single image
    haze removal using dark channel prior", CVPR 2009):  I = J·t + A·(1 − t),  t = exp(−β·d).

    d in [0, 1] is a smooth depth map mixing three parts: low-frequency noise (three octaves of 2,
    4, 8 cells per side, bicubically upsampled, weights 1, ½, ¼, normalised), a linear ramp rising
    toward `gradient_angle` (far side; 60–120°, i.e. top = far, with p 0.7, any direction
    otherwise) with weight `gradient`, and with p 0.4 an image-derived depth proxy (the luma,
    blurred over ~4 % of the short side: bright regions such as the sky count as far) with weight
    `depth_image`; the noise gets the rest (weights sum to 1; gradient + depth_image <= 0.9).
    A is the airlight, recorded as an RGB list: brightness `airlight`, coloured grey/white (p 0.4,
    ±0.02 per channel), bluish (0.3) or yellowish (0.3) by a `tint` strength. With p 0.25 the
    airlight is non-uniform: A·(1 + airlight_slope·(2 ramp − 1)) along `airlight_angle` (a glow
    toward the sun), airlight_slope ±0.25.
    beta 0.3–3 (light to dense), airlight 0.6–1, gradient 0–0.8, depth_image 0–0.6,
    tint 0–0.15: our choice.
    """

    name = "haze"
    ranges = {"beta": (0.3, 3.0), "airlight": (0.6, 1.0), "gradient": (0.0, 0.8),
              "depth_image": (0.0, 0.6), "tint": (0.0, 0.15)}
    limits = {"beta": (0.0, None), "airlight": (0.0, 1.0), "gradient": (0.0, 1.0),
              "depth_image": (0.0, 1.0), "tint": (0.0, 1.0)}
    uses_seed = True
    p_top_far, p_depth_image, p_uneven = 0.7, 0.4, 0.25

    def sample(self, rng):
        params = super().sample(rng)
        colour = pick(rng, AIRLIGHT_COLOURS)
        a, s = params["airlight"], params.pop("tint")
        if colour == "grey":
            rgb = [a + rng.uniform(-0.02, 0.02) for _ in range(3)]
        elif colour == "blue":
            rgb = [a * (1 - s), a * (1 - s / 2), a]
        else:
            rgb = [a, a * (1 - s / 3), a * (1 - s)]
        params["airlight"] = [float(np.clip(c, 0.0, 1.0)) for c in rgb]
        params["airlight_colour"] = colour
        params["gradient_angle"] = float(rng.uniform(60, 120) if rng.random() < self.p_top_far
                                         else rng.uniform(0, 360))
        if rng.random() >= self.p_depth_image:
            params["depth_image"] = 0.0
        params["depth_image"] = float(min(params["depth_image"], max(0.0, 0.9 - params["gradient"])))
        uneven = rng.random() < self.p_uneven
        params["airlight_slope"] = float(rng.uniform(-0.25, 0.25)) if uneven else 0.0
        params["airlight_angle"] = float(rng.uniform(0, 360))
        return params

    def depth(self, img, params):
        """The depth map d in [0, 1] (H×W float32) for `img`."""
        h, w = img.shape[:2]
        d = legacy.octave_noise(img.shape, params["seed"], cells=(2, 4, 8))
        g, k = np.float32(params["gradient"]), np.float32(params["depth_image"])
        d = (1 - g - k) * d + g * ramp(img.shape, params["gradient_angle"])
        if k > 0:
            proxy = cv2.GaussianBlur(np.ascontiguousarray(img @ LUMA), (0, 0), 1.0 + 0.04 * min(h, w))
            d += k * (proxy - proxy.min()) / max(float(proxy.max() - proxy.min()), 1e-6)
        return d

    def _apply(self, img, params):
        if "depth_image" not in params:
            return legacy.haze(img, params)
        t = np.exp(-np.float32(params["beta"]) * self.depth(img, params))[..., None]
        airlight = np.asarray(params["airlight"], np.float32)
        if params["airlight_slope"]:
            glow = 1.0 + np.float32(params["airlight_slope"]) * (2 * ramp(img.shape, params["airlight_angle"]) - 1)
            airlight = np.clip(airlight * glow[..., None], 0.0, 1.0)
        return img * t + airlight * (1.0 - t)
