"""A second, independent implementation of colora's six degradations, for held-out evaluation only.

Written without reference to `colora/degradations/` and with other renderings and
parameterisations, so that an adapter which learned one renderer rather than the degradation
scores badly here. Every function is pure: `degrade(photo, task, seed)` returns the same bytes for
the same arguments (all randomness comes from one `numpy.random.Generator` seeded by (task, seed)).

Per task (spatial sizes are given for a 512-pixel long side and scale with the photo):
- noise: additive white Gaussian noise, sigma (0..255) = 15, 25 or 50 chosen by `seed % 3`;
- blur: `seed % 2 == 0` a motion path (a random curved or straight stroke, 7-23 px) else an
  anisotropic Gaussian (sigmas 0.6-3.2 px, any orientation); then Gaussian noise sigma 1-2;
- rain: anti-aliased strokes (2x supersampled `cv2.LINE_AA`) of varied length, one dominant angle
  with jitter, motion-blurred along that angle, composited with a screen blend;
- raindrop: refracting drops (discs and ellipses, several sizes) showing a flipped, magnified,
  blurred piece of the scene, with a darker rim and a specular highlight;
- rain_raindrop: rain, then drops on the glass in front of it;
- haze: I = J t + A (1 - t), t = exp(-beta d), d a smooth depth map (vertical gradient plus
  low-frequency noise), beta 0.8-2.4 and a slightly tinted airlight per seed;
- clean: the photo, untouched.
"""
import zlib

import cv2
import numpy as np

TASKS = ("noise", "blur", "rain", "raindrop", "rain_raindrop", "haze", "clean")
NOISE_SIGMAS = (15, 25, 50)


def _rng(task, seed):
    return np.random.default_rng([zlib.crc32(task.encode()), int(seed)])


def _scale(img):
    return max(img.shape[:2]) / 512.0


def _to_uint8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def noise_sigma(seed):
    """The AWGN level (0..255 scale) that `degrade(_, "noise", seed)` uses."""
    return NOISE_SIGMAS[int(seed) % len(NOISE_SIGMAS)]


def _awgn(x, sigma, rng):
    return x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(sigma / 255.0)


# ---- blur ----------------------------------------------------------------------------------------
def _motion_kernel(rng, length):
    """A camera-shake path: a stroke whose heading bends and wobbles smoothly (1/3 straight), splatted
    bilinearly at 4 points per pixel of length onto a square kernel."""
    n = int(length * 4)
    t = np.linspace(0.0, 1.0, n)
    bend, wobble = (rng.uniform(-1.5, 1.5), rng.uniform(0, 0.8)) if rng.random() < 2 / 3 else (0.0, 0.0)
    heading = rng.uniform(0, 2 * np.pi) + bend * t + wobble * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t
                                                                      + rng.uniform(0, 2 * np.pi))
    pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * 0.25, 0)
    pts -= pts.mean(0)
    size = int(np.ceil(np.abs(pts).max() * 2)) + 3
    size += 1 - size % 2
    k = np.zeros((size, size), np.float64)
    for x, y in pts + size // 2:
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return (k / k.sum()).astype(np.float32)


def _aniso_gaussian_kernel(rng, s):
    sx, sy = rng.uniform(1.2, 3.2) * s, rng.uniform(0.6, 1.6) * s
    th = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    inv = np.linalg.inv(rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T)
    r = int(np.ceil(3 * max(sx, sy)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    q = inv[0, 0] * xx ** 2 + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy ** 2
    k = np.exp(-0.5 * q)
    return (k / k.sum()).astype(np.float32)


def blur(x, rng, seed):
    s = _scale(x)
    k = _motion_kernel(rng, rng.uniform(7, 23) * s) if seed % 2 == 0 else _aniso_gaussian_kernel(rng, s)
    y = cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT)
    return _awgn(y, rng.uniform(1.0, 2.0), rng)


# ---- rain ----------------------------------------------------------------------------------------
def _line_kernel(length, angle):
    """A normalised line of `length` px along `angle` (radians from vertical), anti-aliased."""
    size = int(np.ceil(length)) | 1
    k = np.zeros((size * 4, size * 4), np.uint8)
    c, dx, dy = size * 2, np.sin(angle) * length * 2, np.cos(angle) * length * 2
    cv2.line(k, (int(c - dx), int(c - dy)), (int(c + dx), int(c + dy)), 255, 2, cv2.LINE_AA)
    k = cv2.resize(k.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return k / k.sum()


def rain_layer(shape, rng):
    """A one-channel rain layer in [0, 1]: strokes drawn at 2x with LINE_AA, blurred along their
    dominant direction, downsampled."""
    h, w = shape
    s = max(h, w) / 512.0
    angle = rng.uniform(-0.5, 0.5)  # dominant direction, radians from vertical
    n = int(rng.uniform(400, 1800) * h * w / 512 ** 2)
    canvas = np.zeros((2 * h, 2 * w), np.uint8)
    for _ in range(n):
        length = rng.uniform(8, 45) * s * 2
        a = angle + rng.normal(0, 0.04)
        x, y = rng.uniform(-0.1 * w, 1.1 * w) * 2, rng.uniform(-0.1 * h, 1.1 * h) * 2
        dx, dy = np.sin(a) * length / 2, np.cos(a) * length / 2
        thick = int(rng.choice([1, 1, 2]))
        value = int(rng.uniform(60, 230))
        cv2.line(canvas, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)), value, thick, cv2.LINE_AA)
    layer = canvas.astype(np.float32) / 255.0
    layer = cv2.filter2D(layer, -1, _line_kernel(rng.uniform(4, 10) * s * 2, angle), borderType=cv2.BORDER_REFLECT)
    layer = cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(layer * rng.uniform(1.0, 1.6), 0, 1)


def rain(x, rng):
    """Screen blend of a slightly blue-white rain layer; a faint veil of scattered light too."""
    layer = rain_layer(x.shape[:2], rng)[..., None] * np.array([0.93, 0.96, 1.0], np.float32)
    layer = layer * rng.uniform(0.5, 0.85)
    veil = rng.uniform(0.0, 0.08)
    x = x * (1 - veil) + veil * 0.85
    return 1 - (1 - x) * (1 - layer)


# ---- raindrops -----------------------------------------------------------------------------------
def raindrops(x, rng):
    """Drops on a glass pane: each shows the scene behind it refracted (flipped, magnified, blurred)."""
    h, w = x.shape[:2]
    s = max(h, w) / 512.0
    out = x.copy()
    behind = cv2.GaussianBlur(x, (0, 0), rng.uniform(1.5, 3.5) * s)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n = int(rng.integers(30, 80) * h * w / 512 ** 2) + 1
    for _ in range(n):
        r = float(np.exp(rng.uniform(np.log(4), np.log(28))) * s)  # several sizes, small ones common
        ry, rx = r, r * rng.uniform(0.7, 1.0)  # discs and (vertically elongated) ellipses
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, x1 = int(max(cx - rx - 2, 0)), int(min(cx + rx + 3, w))
        y0, y1 = int(max(cy - ry - 2, 0)), int(min(cy + ry + 3, h))
        if x1 <= x0 or y1 <= y0:
            continue
        u, v = (xx[y0:y1, x0:x1] - cx) / rx, (yy[y0:y1, x0:x1] - cy) / ry
        rho = np.sqrt(u * u + v * v)
        alpha = np.clip((1.0 - rho) * r / 1.5, 0, 1)[..., None]  # ~1.5 px soft edge
        if not alpha.any():
            continue
        mag = rng.uniform(0.25, 0.6) * (1 + 0.6 * rho ** 2)  # lens: stronger at the rim (fish-eye)
        lift = rng.uniform(0.5, 2.0) * r  # the drop images the scene a little above it
        mx = (cx - u * rx * mag).astype(np.float32)
        my = (cy - lift - v * ry * mag).astype(np.float32)
        inside = cv2.remap(behind, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        inside = inside * rng.uniform(0.9, 1.1) + 0.03
        rim = 1 - rng.uniform(0.3, 0.6) * np.clip((rho - 0.65) / 0.35, 0, 1) ** 2
        inside = inside * rim[..., None]
        hx, hy = -0.35 * rng.uniform(0.6, 1.4), -0.4 * rng.uniform(0.6, 1.4)  # highlight, upper left
        spec = np.exp(-((u - hx) ** 2 + (v - hy) ** 2) / (2 * 0.07 ** 2)) * rng.uniform(0.25, 0.6)
        inside = inside + spec[..., None]
        patch = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = patch * (1 - alpha) + inside * alpha
    return out


# ---- haze ----------------------------------------------------------------------------------------
def depth_map(shape, rng):
    """Smooth depth in [0, 1]: far at the top (a random-power vertical gradient, maybe tilted)
    plus bicubically upsampled low-frequency noise."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 1 - yy / (h - 1) + rng.uniform(-0.3, 0.3) * (xx / (w - 1) - 0.5)
    ramp = np.clip(ramp, 0, None) ** rng.uniform(0.6, 1.6)
    g = int(rng.integers(3, 7))
    low = cv2.resize(rng.random((g, g)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    d = ramp + rng.uniform(0.2, 0.5) * low
    d = cv2.GaussianBlur(d, (0, 0), max(h, w) / 40.0)
    return (d - d.min()) / (d.max() - d.min() + 1e-6)


def haze(x, rng):
    d = depth_map(x.shape[:2], rng)
    beta = rng.uniform(0.8, 2.4)
    t = np.exp(-beta * (0.1 + 0.9 * d))[..., None]
    a = rng.uniform(0.75, 0.95) * (1 + rng.uniform(-0.05, 0.05, 3))  # slight tint
    return x * t + np.clip(a, 0, 1).astype(np.float32) * (1 - t)


# ---- entry point ---------------------------------------------------------------------------------
def degrade(photo, task, seed):
    """`photo` (HxWx3 uint8 RGB) degraded by `task` with `seed`: HxWx3 uint8, deterministic."""
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB photo, got {photo.dtype} {photo.shape}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    if task == "clean":
        return photo.copy()
    rng = _rng(task, seed)
    x = photo.astype(np.float32) / 255.0
    if task == "noise":
        y = _awgn(x, noise_sigma(seed), rng)
    elif task == "blur":
        y = blur(x, rng, seed)
    elif task == "rain":
        y = rain(x, rng)
    elif task == "raindrop":
        y = raindrops(x, rng)
    elif task == "rain_raindrop":
        y = raindrops(rain(x, rng), rng)
    else:
        y = haze(x, rng)
    return _to_uint8(y)


def describe(task, seed):
    """The seed-determined variant of `task`, for reports (the other parameters are random)."""
    if task == "noise":
        return f"AWGN sigma {noise_sigma(seed)}"
    if task == "blur":
        return "motion path" if int(seed) % 2 == 0 else "anisotropic Gaussian"
    return task
