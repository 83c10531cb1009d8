"""Guided refinement: hold an adapter's output to the form its degradation allows (our choice).

Haze follows the scattering model I = J·t + A·(1 − t) (Koschmieder; He, Sun, Tang 2009), so the
clean colour J = I/t − A·(1 − t)/t is, at every pixel, an affine function of the hazy one whose
coefficients change only as smoothly as depth. The network's output is not held to that form: on
photos the haze adapter leaves a faint grid at the period of its stride-2 levels and blotches.
The guided filter (He, Sun, Tang, TPAMI 2013) fits in every (2r+1)² window the affine map of the
input channel that best explains the output channel and averages the fits (the Deep Guided Filter
of Wu et al., CVPR 2018, uses it the same way): edges and texture come from the input, the dehazing
from the network, and what no local affine map of the input can make (the grid) is dropped.

RULES holds, per adapter task, the (radius px, eps) chosen on colora's own haze at photo scale
(the scripts/validate_photos.py photos; BENCHMARKS.md), never on the held-out benchmark. Tasks
that add or remove detail (noise, blur, rain, drops) are not affine in the input and get none.
"""
from typing import Optional, Tuple

import cv2
import numpy as np

RULES = {"haze": (16, 1e-5)}
REFINE_MODES = ("auto", "off")
STRIP_ROWS = 512  # rows filtered at once: memory stays O(width x 512) however tall the photo


def _box(x, r):
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of one channel `src` (HxW float32) steered by one channel `guide` (HxW)."""
    guide = guide.astype(np.float32)
    src = src.astype(np.float32)
    mean_g = _box(guide, r)
    var_g = _box(guide * guide, r) - mean_g ** 2
    mean_s = _box(src, r)
    cov = _box(guide * src, r) - mean_g * mean_s
    a = cov / (var_g + eps)
    b = mean_s - a * mean_g
    return _box(a, r) * guide + _box(b, r)


def guided_refine(before: np.ndarray, after: np.ndarray, r: int, eps: float, rows: int = STRIP_ROWS) -> np.ndarray:
    """`after` (HxWx3 float32 in [0, 1], the network's output for `before`) refined channel by
    channel with `before` as the guide, in strips of `rows` rows with a 2r-row halo: a pixel's value
    depends on rows within 2r of it only, so the strips give exactly the whole-image result."""
    h = before.shape[0]
    out = np.empty_like(after, dtype=np.float32)
    halo = 2 * r
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        a0, a1 = max(0, y0 - halo), min(h, y1 + halo)
        for c in range(after.shape[2]):
            part = guided_filter(before[a0:a1, :, c], after[a0:a1, :, c], r, eps)
            out[y0:y1, :, c] = part[y0 - a0:y1 - a0]
    np.clip(out, 0.0, 1.0, out=out)
    return out


def rule_for(tasks) -> Optional[Tuple[int, float]]:
    """The (radius, eps) for a step that applies adapters of `tasks`, when they all share one rule."""
    rules = {RULES.get(t) for t in tasks}
    return rules.pop() if len(rules) == 1 else None
