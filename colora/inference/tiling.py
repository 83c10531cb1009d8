"""Tiled inference with seamless blending and bounded memory.

The image stays a numpy array on the CPU; only one padded tile at a time goes through the network,
so a 24-megapixel photo never has to fit the device (or the activations of one forward) whole.
Tiles of `tile` pixels overlap their neighbours by `pad` on each side; in the 2*pad band where two
tiles overlap, their outputs are mixed with raised-cosine weights that sum to one, so no seam can
show, and each output pixel comes from a tile that saw at least `pad` pixels of context (except at
the image border, where weights stay 1).
"""
import math

import numpy as np
import torch


def _ramp(n_before, core, n_after, pad):
    """1-D weights over a padded span: rising over the 2*pad band around the start of the core,
    falling likewise at its end; flat 1 where the span touches the image border (n_* = 0)."""
    x = np.arange(n_before + core + n_after, dtype=np.float64) + 0.5
    w = np.ones_like(x)
    if n_before:
        r = np.clip((x - (n_before - pad)) / (2 * pad), 0, 1)
        w *= 0.5 - 0.5 * np.cos(math.pi * r)
    if n_after:
        end = n_before + core
        r = np.clip(((end + pad) - x) / (2 * pad), 0, 1)
        w *= 0.5 - 0.5 * np.cos(math.pi * r)
    return w


def tile_spans(size, tile, pad):
    """[(start, stop, core_start, core_stop)] along one axis: cores of `tile` pixels covering the
    axis, each widened by `pad` (clamped to the image)."""
    spans = []
    for core_start in range(0, size, tile):
        core_stop = min(core_start + tile, size)
        spans.append((max(core_start - pad, 0), min(core_stop + pad, size), core_start, core_stop))
    return spans


def count_tiles(h, w, tile):
    return math.ceil(h / tile) * math.ceil(w / tile)


def run_tiled(forward, image, tile, pad, progress=None):
    """Apply `forward` (a function: (1,C,h,w) float tensor -> same) to `image` (HxWxC float32) tile
    by tile; returns the blended HxWxC float32 result."""
    h, w, c = image.shape
    pad = max(int(pad), 1)
    out = np.zeros((h, w, c), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    for y0, y1, cy0, cy1 in tile_spans(h, tile, pad):
        wy = _ramp(cy0 - y0, cy1 - cy0, y1 - cy1, pad)
        for x0, x1, cx0, cx1 in tile_spans(w, tile, pad):
            wx = _ramp(cx0 - x0, cx1 - cx0, x1 - cx1, pad)
            patch = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).permute(2, 0, 1)[None]
            result = forward(patch)[0].permute(1, 2, 0).float().numpy()
            wt = (wy[:, None] * wx[None, :]).astype(np.float32)[..., None]
            out[y0:y1, x0:x1] += result * wt
            weight[y0:y1, x0:x1] += wt
            if progress is not None:
                progress.update(1)
    out /= np.maximum(weight, 1e-12)
    return out
