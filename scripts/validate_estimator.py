"""Validation of a degradation estimator: choose among estimator runs without the held-out benchmark.

    python scripts/validate_estimator.py [--estimator FILE ...] [--size 384] [--seeds 2]

The bundled scikit-image photos (no training step of the shipped weights uses them), shrunk to
`--size`, degraded by colora's *own* `degrade_task` for the sets of benchmarks/all_in_one.py (one
task, mixtures composed in the order light meets them, untouched) and saved as 8-bit. Prints, per
estimator, how often `detected` names exactly the right adapters in each set. benchmarks/all_in_one.py
is the test on independent degradations; this is the validation a run is picked on.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.all_in_one import SETS  # noqa: E402
from benchmarks.common import table  # noqa: E402
from scripts.validate_photos import PHOTOS, clean_photos  # noqa: E402


def degraded_sets(photos=PHOTOS, size=384, seeds=2):
    """{set: [degraded 8-bit image, ...]}: photo i, seed s degraded with the generator [s, i, set number]."""
    from colora.degradations.tasks import degrade_task
    from colora.imageio import as_saved

    clean = clean_photos(photos, size)
    out = {}
    for n, (name, (ops, _)) in enumerate(SETS.items()):
        out[name] = []
        for i, gt in enumerate(clean):
            for s in range(seeds):
                rng, img = np.random.default_rng([s, i, n]), gt
                for op in ops:
                    img, _ = degrade_task(img, op, rng)
                out[name].append(np.asarray(as_saved(img), np.float32))
    return out


def exact_picks(model, sets, threshold=0.5):
    """{set: fraction of its images whose `detected` tasks are exactly the set's adapters}."""
    from colora.inference.estimator import detected, estimate

    return {name: float(np.mean([detected(estimate(model, img), threshold) == SETS[name][1] for img in imgs]))
            for name, imgs in sets.items()}


def main(argv=None):
    import torch

    from colora.inference.estimator import load_estimator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--estimator", nargs="*", default=[None], help="estimator files (default: the shipped one)")
    p.add_argument("--size", type=int, default=384, help="photos' long side")
    p.add_argument("--seeds", type=int, default=2, help="degradations per photo and set")
    p.add_argument("--threshold", type=float, nargs="*", default=[0.5],
                   help="detection thresholds to compare (`colora restore --auto-threshold`)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    sets = degraded_sets(size=a.size, seeds=a.seeds)
    scores = {f"{f or 'shipped'} @ {t:g}": exact_picks(load_estimator(f), sets, t)
              for f in a.estimator for t in a.threshold}
    single = ("noise", "blur", "rain", "raindrop", "rain_raindrop", "haze")
    rows = [[name] + [f"{100 * s[name]:.0f} %" for s in scores.values()] for name in SETS]
    rows.append(["single tasks (mean)"] + [f"{100 * np.mean([s[k] for k in single]):.0f} %" for s in scores.values()])
    rows.append(["all sets (mean)"] + [f"{100 * np.mean(list(s.values())):.0f} %" for s in scores.values()])
    print(f"exact picks on {len(PHOTOS)} bundled photos x {a.seeds} seeds, {a.size} px, colora's own degradations\n")
    print(table(["set"] + list(scores), rows))
    return scores


if __name__ == "__main__":
    main()
