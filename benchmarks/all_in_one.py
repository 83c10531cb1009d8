"""All-in-one restoration on held-out photos (issue 14): what the degradation estimator detects.

    python benchmarks/all_in_one.py [--estimator FILE] [--photos N] [--json FILE]

Photos: benchmarks/heldout/ (no training step uses them), degraded by the independent
implementation benchmarks/heldout_degradations.py, one task at a time, as mixtures composed in
the order light meets them (haze in the scene, rain in the air, drops on the glass, blur in the
optics, noise in the sensor), and untouched. For each set: how often the estimator's decision
(`colora.inference.estimator.detected`) names exactly the right adapters, the mean probability it
gives each label, its severity (predicted dB against the clean photo) next to the true PSNR, and
its time per image. With `--restore`: PSNR / SSIM of `--adapter auto` (chain and blend) against
the oracle, the best single adapter and, given `--all-in-one DIR`, one adapter trained on every
task (benchmarks/all_in_one_restore.py), and the time choosing adds.

    python benchmarks/all_in_one.py --restore --photos 4 --size 384 [--model BASE --adapter-dir DIR]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, table  # noqa: E402
from benchmarks.heldout_degradations import degrade  # noqa: E402
from benchmarks.vs_classical import load_photos  # noqa: E402

# set name -> (held-out degradations applied in this order, the adapters the oracle would chain)
SETS = {
    "clean": ((), ()),
    "noise": (("noise",), ("noise",)),
    "blur": (("blur",), ("blur",)),
    "rain": (("rain",), ("rain",)),
    "raindrop": (("raindrop",), ("raindrop",)),
    "rain_raindrop": (("rain_raindrop",), ("rain_raindrop",)),
    "haze": (("haze",), ("haze",)),
    "haze+rain": (("haze", "rain"), ("rain", "haze")),
    "blur+noise": (("blur", "noise"), ("noise", "blur")),
    "haze+noise": (("haze", "noise"), ("noise", "haze")),
    "haze+rain+raindrop": (("haze", "rain_raindrop"), ("rain_raindrop", "haze")),
}


def degraded(photo, ops, seed):
    out = photo
    for op in ops:
        out = degrade(out, op, seed)
    return out


def main(argv=None):
    import torch

    from colora.inference.estimator import LABELS, detected, estimate, load_estimator
    from colora.metrics import calculate_psnr

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--estimator", help="estimator file (default: the shipped one)")
    p.add_argument("--photos", type=int, default=None, help="use the first N held-out photos")
    p.add_argument("--size", type=int, default=None, help="downscale photos to this long side")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--restore", action="store_true", help="also restore: auto vs oracle vs best single adapter")
    p.add_argument("--model", help="base checkpoint (default: the shipped one)")
    p.add_argument("--adapter-dir", help="adapter folders, one per task (default: the shipped ones)")
    p.add_argument("--all-in-one", help="one adapter fine-tuned on all six tasks, for its column")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_estimator(a.estimator)
    photos = load_photos(a.photos, a.size)
    results, rows = {}, []
    for name, (ops, truth) in SETS.items():
        hits, probs, sev, true_db, secs, picks = 0, [], [], [], [], []
        for _, photo, seed in photos:
            img = degraded(photo, ops, seed)
            t = time.perf_counter()
            est = estimate(model, img)
            secs.append(time.perf_counter() - t)
            pick = detected(est)
            hits += pick == truth
            picks.append("+".join(pick) or "none")
            probs.append([est[k] for k in LABELS])
            sev.append(est["severity"])
            true_db.append(min(50.0, calculate_psnr(img, photo)) if ops else 50.0)
        mean = np.mean(probs, 0)
        results[name] = {"truth": list(truth), "accuracy": hits / len(photos), "picks": picks,
                         "mean_prob": dict(zip(LABELS, mean.round(3).tolist())),
                         "severity_db": float(np.mean(sev)), "true_psnr_db": float(np.mean(true_db)),
                         "seconds_per_image": float(np.mean(secs))}
        rows.append([name, "+".join(truth) or "none", f"{100 * hits / len(photos):.0f} %",
                     ", ".join(f"{k} {v:.2f}" for k, v in zip(LABELS, mean) if v >= 0.2),
                     f"{np.mean(sev):.1f} / {np.mean(true_db):.1f}", f"{1000 * np.mean(secs):.0f}"])
    single = [results[s]["accuracy"] for s in ("noise", "blur", "rain", "raindrop", "rain_raindrop", "haze")]
    print(f"machine: {machine()}")
    print(f"{len(photos)} held-out photos per set; estimator {a.estimator or 'shipped'}\n")
    print(table(["set", "right adapters", "exact picks", "mean probability (>= 0.2)",
                 "severity: predicted / true dB", "ms per image"], rows))
    print(f"\nsingle-task picks right: {100 * np.mean(single):.0f} % (target >= 95 %); "
          f"clean left alone: {100 * results['clean']['accuracy']:.0f} %")
    doc = {"machine": machine(), "sets": results}
    if a.restore:
        from benchmarks.all_in_one_restore import HEADERS, restoration

        doc["restoration"], rows = restoration(SETS, photos, degraded, a.model, a.adapter_dir, a.estimator,
                                               a.all_in_one)
        print("\nPSNR / SSIM against the clean photo (clean set: 100 dB = returned untouched)\n")
        print(table(HEADERS, rows))
        print("\nauto recheck ran: " + "; ".join(f"{k} " + ", ".join(v["auto recheck"]["picks"])
                                                 for k, v in doc["restoration"].items() if k != "_time"))
        t = doc["restoration"]["_time"]
        if t["one_adapter_seconds"]:
            print(f"\nchoosing adds {1000 * t['auto_added_seconds']:.0f} ms to a {t['one_adapter_seconds']:.2f} s "
                  f"one-adapter restore: {100 * t['auto_added_seconds'] / t['one_adapter_seconds']:.1f} % (target <= 15 %)")
    if a.json:
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    main()
