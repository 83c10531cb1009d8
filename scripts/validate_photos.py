"""Photo-scale validation: choose among training runs without touching the held-out benchmark.

    python scripts/validate_photos.py --tasks raindrop --adapter raindrop=EXP/raindrop_colora/adapter
    python scripts/validate_photos.py --model new/base.safetensors            # every shipped adapter
    python scripts/validate_photos.py --model new/base.safetensors --per-op   # the base alone, op by op

Whole bundled scikit-image photos (no training step of the shipped weights uses them), shrunk to
`--size` on the longest side and degraded by colora's *own* `degrade_task` at photo scale (drop
sizes, haze depth and blur lengths as on a photo, unlike a training run's 96-px validation crops,
whose mean PSNR crops without any drop dominate). Prints input / base alone / base + adapter,
PSNR/SSIM averaged over photos x seeds. benchmarks/vs_classical.py is the test; this is the
validation a run is picked on (our rule: never pick on the test). `--per-op` checks a pre-training
run instead: the base alone on each PROD op by itself (a base that returns an op's output unchanged,
0.00 dB, has not learned that op, however well it does on mixtures).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.vs_classical import PSNR_CAP, _score as score, shrink  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket")


def clean_photos(photos=PHOTOS, size=512):
    """The bundled validation photos, in order, shrunk to `size` on the longest side."""
    from colora.imageio import bundled_photos

    return [shrink(img, size) for img in bundled_photos(photos).values()]


def _setup(model, photos, size, precision):
    """The clean photos shrunk to `size`, in order, and the base alone as a Restorer."""
    from colora.inference.restorer import Restorer

    return clean_photos(photos, size), Restorer.from_files(model, [], precision=precision)


def validate(model, adapters, tasks, photos=PHOTOS, size=512, seeds=1, precision="fp32"):
    """{task: {"input"|"base"|"adapter": (PSNR, SSIM)}}; `adapters` maps task -> adapter (name or folder).
    Photo i, seed s is degraded with the generator seeded [s, i]."""
    from colora.degradations.tasks import degrade_task
    from colora.inference.restorer import Restorer

    clean, base = _setup(model, photos, size, precision)
    rows = {}
    for task in tasks:
        tuned = Restorer.from_files(model, [adapters.get(task, task)], precision=precision)
        scores = {"input": [], "base": [], "adapter": []}
        for i, gt in enumerate(clean):
            for seed in range(seeds):
                lq, _ = degrade_task(gt, task, np.random.default_rng([seed, i]))
                scores["input"].append(score(lq, gt))
                scores["base"].append(score(base.restore(lq), gt))
                scores["adapter"].append(score(tuned.restore(lq), gt))
        rows[task] = {k: tuple(np.mean(v, axis=0)) for k, v in scores.items()}
    return rows


def per_op(model, photos=PHOTOS, size=512, seeds=1, precision="fp32"):
    """{op: (input PSNR, base-alone PSNR)} over photos x seeds, each photo degraded by that op alone;
    the first row, "clean", is the untouched photos (issue 13: the base must return them at >= 35 dB)."""
    from colora.degradations.base import get_op
    from colora.degradations.prod import DEFAULT_POOL

    clean, base = _setup(model, photos, size, precision)
    rows = {"clean": (PSNR_CAP, float(np.mean([score(base.restore(gt), gt)[0] for gt in clean])))}
    for op in DEFAULT_POOL:
        inputs, outputs = [], []
        for i, gt in enumerate(clean):
            for seed in range(seeds):
                lq, _ = get_op(op)(gt, np.random.default_rng([seed, i]))
                inputs.append(score(lq, gt)[0])
                outputs.append(score(base.restore(lq), gt)[0])
        rows[op] = (float(np.mean(inputs)), float(np.mean(outputs)))
    return rows


def main(argv=None):
    from colora.degradations.tasks import RESTORATION_TASKS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="base .safetensors (default: the shipped base)")
    ap.add_argument("--adapter", action="append", default=[], metavar="TASK=PATH",
                    help="an adapter folder for a task (default: the shipped adapter); repeatable")
    ap.add_argument("--tasks", nargs="+", default=list(RESTORATION_TASKS), choices=RESTORATION_TASKS)
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS))
    ap.add_argument("--size", type=int, default=512, help="longest side of each photo (default 512)")
    ap.add_argument("--seeds", type=int, default=1, help="degradations per photo (default 1)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    ap.add_argument("--per-op", action="store_true", help="the base alone on each PROD op by itself")
    args = ap.parse_args(argv)
    if args.per_op:
        print(f"{'op':<28}{'input':>8}{'base':>8}{'gain':>8}")
        for op, (x, y) in per_op(args.model, args.photos, args.size, args.seeds, args.precision).items():
            print(f"{op:<28}{x:8.2f}{y:8.2f}{y - x:+8.2f}")
        return
    adapters = {}
    for spec in args.adapter:
        task, sep, path = spec.partition("=")
        if not sep or task not in args.tasks:
            ap.error(f"--adapter takes TASK=PATH with TASK among --tasks, got {spec!r}")
        adapters[task] = path
    rows = validate(args.model, adapters, args.tasks, args.photos, args.size, args.seeds, args.precision)
    print(f"{'task':<14}{'input':>16}{'base alone':>16}{'base + adapter':>16}")
    for task, row in rows.items():
        print(f"{task:<14}" + "".join(f"{p:>9.2f} / {s:.3f}" for p, s in row.values()))


if __name__ == "__main__":
    main()
