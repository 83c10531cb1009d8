"""The first renderers of rain, raindrop and haze, kept so recipes recorded with them replay exactly.

Their params lack the keys the current ops record ("layers" for rain, "light_angle" for raindrop,
"depth_image" for haze); `weather` hands such params here. New samples never come from here;
the drawing helpers both versions share (`drop_frame`, `octave_noise`) live here too.
"""
import cv2
import numpy as np

from colora.degradations.blur import linear_motion_kernel

REFERENCE_SIZE = 256.0


def rain_layer(shape, params):
    """v1 rain: one layer of straight streaks (density, length, angle, width, brightness, seed)."""
    rng = np.random.default_rng(params["seed"])
    kernel = linear_motion_kernel(params["length"], params["angle"])
    kernel = (kernel / kernel.max()).astype(np.float32)
    pad = kernel.shape[0] // 2
    h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
    seeds = (rng.random((h, w)) < params["density"]) * rng.uniform(0.4, 1.0, (h, w))
    streaks = cv2.filter2D(seeds.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    streaks = streaks[pad:pad + shape[0], pad:pad + shape[1]]
    if params["width"] > 1:
        streaks = cv2.dilate(streaks, np.ones((params["width"],) * 2, np.uint8))
    return np.clip(streaks, 0.0, 1.0) * np.float32(params["brightness"])


def rain(img, params):
    layer = rain_layer(img.shape, params)[..., None]
    return 1.0 - (1.0 - img) * (1.0 - layer)


def drop_frame(xs, ys, cx, cy, ext, rot):
    """The box of ±`ext` px around (cx, cy) clipped to the image, offsets (dx, dy) from the centre
    and the same rotated by `rot` radians (u, v); None when the box misses the image."""
    h, w = xs.shape
    x0, x1 = int(max(0, cx - ext)), int(min(w, cx + ext + 1))
    y0, y1 = int(max(0, cy - ext)), int(min(h, cy + ext + 1))
    if x0 >= x1 or y0 >= y1:
        return None
    box = np.s_[y0:y1, x0:x1]
    dx, dy = xs[box] - cx, ys[box] - cy
    return box, dx, dy, dx * np.cos(rot) + dy * np.sin(rot), -dx * np.sin(rot) + dy * np.cos(rot)


def raindrop(img, params):
    """v1 raindrops: inverted, minified, defocused background in soft ellipses (count, radius, zoom)."""
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
        frame = drop_frame(xs, ys, cx, cy, max(rx, ry) + 2, rot)
        if frame is None:
            continue
        box, dx, dy, u, v = frame
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        a = np.clip((1.0 - rho) / max(0.15, 1.5 / r), 0.0, 1.0)
        top = a > alpha[box]
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


def octave_noise(shape, seed, cells=(3, 6, 12)):
    """Smooth noise in [0, 1] (H×W float32): octaves of cells×cells uniform noise, bicubically
    upsampled, weights 1, ½, ¼, ..., normalised."""
    h, w = shape[:2]
    rng = np.random.default_rng(seed)
    d = np.zeros((h, w), np.float32)
    for i, n in enumerate(cells):
        noise = rng.random((n, n)).astype(np.float32)
        d += 0.5 ** i * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return (d - d.min()) / max(float(d.max() - d.min()), 1e-6)


def haze_depth(shape, params):
    """v1 haze depth: three octaves of low-frequency noise mixed with a vertical gradient."""
    h = shape[0]
    d = octave_noise(shape, params["seed"])
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None]
    g = np.float32(params["gradient"])
    return (1 - g) * d + g * rows


def haze(img, params):
    t = np.exp(-np.float32(params["beta"]) * haze_depth(img.shape, params))[..., None]
    airlight = np.asarray(params["airlight"], np.float32)
    return img * t + airlight * (1.0 - t)
