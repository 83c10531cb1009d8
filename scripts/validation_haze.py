"""A third haze renderer, for validation only: choose haze recipes on a haze neither trained nor tested on.

    python scripts/validation_haze.py BASE:ADAPTER [BASE:ADAPTER ...] [--seeds 4]

Every base pre-trained longer on colora's own haze gave haze adapters that do worse on the held-out
haze of benchmarks/heldout_degradations.py (BENCHMARKS.md, sessions 13-15), and validation on
colora's own haze cannot see that. This renderer is a third one, written apart from both:
- in linear light (sRGB decoded first, re-encoded after), where scattering adds radiance;
- depth from scene geometry: a horizon at 20-60 % of the height, a ground plane below it whose
  distance grows as 1 / (rows below the horizon), the sky at the farthest depth, plus a few nearer
  smooth blobs (trees, buildings), slightly rotated;
- a scattering coefficient per channel, beta_c = beta (550 nm / lambda_c)^q with the Angstrom
  exponent q in 0-1.3 (fog to haze: blue scatters more);
- beta 0.3-1.8 (light to dense); an airlight of 0.7-0.95 with a colour temperature tint and a glow toward one side.
Prints PSNR / SSIM of input, base alone and base + adapter (guided refinement as `restore` does),
averaged over the bundled validation photos x seeds. Validation, never a benchmark figure.
"""
import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colora.degradations.noise import linear_to_srgb, srgb_to_linear  # noqa: E402  (the sRGB curve)
from scripts.validate_photos import PHOTOS, clean_photos, score  # noqa: E402

WAVELENGTHS = np.array([610.0, 550.0, 465.0], np.float32)  # R, G, B (nm)


def scene_depth(shape, rng):
    """Depth in [0, 1] (H x W float32): ground plane below a horizon, sky beyond, nearer blobs."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = np.tan(np.deg2rad(rng.uniform(-6, 6)))
    horizon = rng.uniform(0.2, 0.6) * h + tilt * (xx - w / 2)
    below = np.maximum(yy - horizon, 0.0)
    d = np.minimum(1.0, rng.uniform(0.02, 0.08) * h / (below + 1.0))  # 1 / distance below the horizon
    for _ in range(int(rng.integers(1, 5))):  # nearer objects: smooth bumps toward the camera
        cx, cy = rng.uniform(0, w), rng.uniform(0.3, 1.0) * h
        sx, sy = rng.uniform(0.05, 0.25) * w, rng.uniform(0.1, 0.4) * h
        bump = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        d = d * (1 - rng.uniform(0.3, 0.8) * bump)
    d = cv2.GaussianBlur(d, (0, 0), max(h, w) / 60.0)
    near = rng.uniform(0.0, 0.3)
    return (near + (1 - near) * (d - d.min()) / (d.max() - d.min() + 1e-6)).astype(np.float32)


def haze(photo, seed):
    """`photo` (H x W x 3 float32 in [0, 1], sRGB) hazed with the renderer's draw for `seed`."""
    rng = np.random.default_rng([zlib.crc32(b"validation-haze"), int(seed)])
    h, w = photo.shape[:2]
    d = scene_depth((h, w), rng)
    beta = rng.uniform(0.3, 1.8) * (550.0 / WAVELENGTHS) ** rng.uniform(0.0, 1.3)
    t = np.exp(-d[..., None] * beta)
    kelvin_tint = rng.uniform(-0.08, 0.08)  # warm (> 0) or cold (< 0) airlight
    a = rng.uniform(0.7, 0.95) * np.array([1 + kelvin_tint, 1.0, 1 - kelvin_tint], np.float32)
    side = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None] * rng.choice([-1, 1])
    airlight = srgb_to_linear(np.clip(a * (1 + rng.uniform(0, 0.12) * side), 0, 1))
    return linear_to_srgb(srgb_to_linear(photo) * t + airlight * (1 - t)).astype(np.float32)


def validate(pairs, seeds=4, size=512):
    """{label: {"input"|"base"|"adapter": (PSNR, SSIM)}} for `pairs` of (base path, adapter folder)."""
    from colora.imageio import as_saved
    from colora.inference.restorer import Restorer

    clean = clean_photos(PHOTOS, size)
    hazy = [(gt, np.asarray(as_saved(haze(gt, 100 * i + s)), np.float32)) for i, gt in enumerate(clean)
            for s in range(seeds)]

    def mean_score(restorer):
        return tuple(np.mean([score(restorer.restore(lq) if restorer else lq, gt) for gt, lq in hazy], axis=0))

    rows, alone, before = {}, {}, mean_score(None)
    for base, adapter in pairs:
        if base not in alone:  # the base alone once per base, however many of its adapters are scored
            alone[base] = mean_score(Restorer.from_files(base, []))
        rows[f"{base}:{adapter}"] = {"input": before, "base": alone[base],
                                     "adapter": mean_score(Restorer.from_files(base, [adapter]))}
    return rows


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="BASE:ADAPTER_FOLDER (BASE 'shipped' = the base shipped with colora)")
    p.add_argument("--seeds", type=int, default=4, help="hazes per photo")
    p.add_argument("--size", type=int, default=512, help="photos' long side")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    pairs = [(None if b in ("", "shipped") else b, ad) for b, ad in (x.rsplit(":", 1) for x in a.pairs)]
    rows = validate(pairs, a.seeds, a.size)
    print(f"validation haze (third renderer), {len(PHOTOS)} bundled photos x {a.seeds} seeds, {a.size} px")
    for label, r in rows.items():
        print(f"{label}: input {r['input'][0]:.2f} / {r['input'][1]:.3f}, base {r['base'][0]:.2f} / "
              f"{r['base'][1]:.3f}, adapter {r['adapter'][0]:.2f} / {r['adapter'][1]:.3f}")
    return rows


if __name__ == "__main__":
    main()
