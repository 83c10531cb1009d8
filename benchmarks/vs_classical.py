"""Held-out quality: colora vs the degraded input and the best classical filter, per task (issue 13).

    python benchmarks/vs_classical.py                                  # shipped weights, 8 photos
    python benchmarks/vs_classical.py --model new/base.safetensors --adapter-dir new/adapters

The honest check of what colora is for. Photos: benchmarks/heldout/*.png (no training step uses
them); degradations: benchmarks/heldout_degradations.py, written apart from colora/degradations/
so an adapter that learned one renderer is caught. Per task: the degraded input, classical
methods (benchmarks/classical.py, best of a 3-setting grid each; the best by mean PSNR is "best
classical"), colora's base alone and base + the task's adapter, through the public Restorer API.
PSNR/SSIM (colora.metrics, RGB, no border crop; identical images count as 100 dB) are means over
photos; seconds per megapixel are measured here, with the machine line and load printed on top.
Photo i of the sorted folder is degraded with seed i, so noise spreads sigma 15/25/50 over photos
(i % 3) and blur alternates motion path / anisotropic Gaussian (i % 2).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.classical import METHODS  # noqa: E402
from benchmarks.common import machine as common_machine, table  # noqa: E402
from benchmarks.heldout_degradations import TASKS, degrade, describe  # noqa: E402

PHOTOS = ROOT / "benchmarks" / "heldout"
PSNR_CAP = 100.0  # identical images: PSNR is infinite; JSON and tables get this instead
TARGET_DB = 1.0
CLEAN_DB = 35.0


def load_photos(n=None, size=None):
    """[(name, HxWx3 uint8 RGB, seed)]: seed = index in the sorted folder, so a subset keeps it."""
    out = []
    for seed, path in enumerate(sorted(PHOTOS.glob("*.png"))[:n]):
        img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append((path.stem, shrink(img, size) if size else img, seed))
    return out


def shrink(img, size):
    """`img` with its longest side at most `size` (area interpolation)."""
    f = size / max(img.shape[:2])
    if f >= 1:
        return img
    return cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)


def _u8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _score(out, clean):
    from colora.metrics import calculate_psnr, calculate_ssim

    return min(calculate_psnr(out, clean, crop_border=0), PSNR_CAP), calculate_ssim(out, clean, crop_border=0)


def _summary(outputs, cleans, seconds, setting=None):
    scores = [_score(o, c) for o, c in zip(outputs, cleans)]
    mpx = sum(c.shape[0] * c.shape[1] for c in cleans) / 1e6
    return {"psnr": float(np.mean([s[0] for s in scores])), "ssim": float(np.mean([s[1] for s in scores])),
            "sec_per_mpx": seconds / mpx if seconds is not None else None, "setting": setting,
            "per_photo_psnr": [s[0] for s in scores], "per_photo_ssim": [s[1] for s in scores]}


def _timed(fn, images):
    outs, t = [], time.perf_counter()
    for im in images:
        outs.append(fn(im))
    return outs, time.perf_counter() - t


def run_task(task, photos, base, adapted, unrefined=None):
    """Every method on every photo of one task: {"methods": {...}, "best_classical": name, ...}.
    `unrefined`: the adapter with --refine off, shown beside it where a refinement applies."""
    cleans = [p[1] for p in photos]
    lqs = [degrade(img, task, seed) for _, img, seed in photos]
    methods, grid, outputs = {"input": _summary(lqs, cleans, None)}, {}, {"input": lqs}
    for name, (fn, settings, meaning) in METHODS[task].items():
        best = None
        for s in settings:
            outs, sec = _timed(lambda im: _u8(fn(im.astype(np.float32) / 255.0, s)), lqs)
            res = _summary(outs, cleans, sec, s)
            grid[f"{name} {s}"] = {k: res[k] for k in ("psnr", "ssim", "sec_per_mpx")}
            if best is None or res["psnr"] > best[0]["psnr"]:
                best = (res, outs)
        methods[name] = dict(best[0], setting_meaning=meaning)
        outputs[name] = best[1]
    classical = max(METHODS[task], key=lambda m: methods[m]["psnr"])
    for label, restorer in (("base", base), ("base + adapter", adapted), ("base + adapter, refine off", unrefined)):
        if restorer is not None:
            outs, sec = _timed(restorer.restore, lqs)
            methods[label], outputs[label] = _summary(outs, cleans, sec), outs
    res = {"methods": methods, "best_classical": classical, "classical_grid": grid,
           "photos": [{"name": n, "seed": s, "variant": describe(task, s)} for n, _, s in photos]}
    res["targets"] = targets(task, res)
    return res, outputs, lqs


def targets(task, res):
    """The issue's bars: {name: (met, detail)}."""
    m = res["methods"]
    base_gap = min(b - i for b, i in zip(m["base"]["per_photo_psnr"], m["input"]["per_photo_psnr"]))
    if task == "clean":
        psnr = m["base"]["psnr"]
        return {"base returns a clean photo at >= 35 dB": (psnr >= CLEAN_DB, f"{psnr:.2f} dB")}
    cls, ad, inp = m[res["best_classical"]], m.get("base + adapter"), m["input"]
    out = {"base never below input": (base_gap >= 0, f"worst photo {base_gap:+.2f} dB")}
    if ad is not None:
        d_cls, d_in = ad["psnr"] - cls["psnr"], ad["psnr"] - inp["psnr"]
        out["adapter >= best classical + 1 dB, SSIM >= classical"] = (
            d_cls >= TARGET_DB and ad["ssim"] >= cls["ssim"], f"{d_cls:+.2f} dB, SSIM {ad['ssim'] - cls['ssim']:+.3f}")
        out["adapter >= input + 1 dB"] = (d_in >= TARGET_DB, f"{d_in:+.2f} dB")
    return out


def _fmt(m):
    return f"{m['psnr']:.2f} / {m['ssim']:.3f}"


def _verdict(t, key):
    return f"{'met' if t[key][0] else '**NOT met**'} ({t[key][1]})" if key in t else "—"


def report(results):
    """The markdown tables: a summary with the targets, then every method with its speed."""
    head = ["task", "input", "best classical", "base alone", "base + adapter", "adapter − best classical",
            "adapter − input", "adapter ≥ classical + 1 dB, SSIM ≥", "adapter ≥ input + 1 dB", "base alone"]
    rows, rows_all = [], []
    for task, r in results.items():
        m, t, cls = r["methods"], r["targets"], r["best_classical"]
        ad = m.get("base + adapter")
        base_key = next(k for k in t if k.startswith("base"))
        rows.append([task, _fmt(m["input"]), f"{_fmt(m[cls])} {cls}", _fmt(m["base"]), _fmt(ad) if ad else "—",
                     f"{ad['psnr'] - m[cls]['psnr']:+.2f}" if ad else "—",
                     f"{ad['psnr'] - m['input']['psnr']:+.2f}" if ad else "—",
                     _verdict(t, "adapter >= best classical + 1 dB, SSIM >= classical"),
                     _verdict(t, "adapter >= input + 1 dB"),
                     f"{'≥ 35 dB' if task == 'clean' else 'never below input'}: {_verdict(t, base_key)}"])
        for name, v in m.items():
            sec = "—" if v["sec_per_mpx"] is None else f"{v['sec_per_mpx']:.2f}"
            setting = "" if v.get("setting") is None else f"{v.get('setting_meaning', '')} = {v['setting']}"
            rows_all.append([task, name + (" ★" if name == cls else ""), setting, f"{v['psnr']:.2f}",
                             f"{v['ssim']:.3f}", sec])
    return (table(head, rows) + "\n\nEvery method (★ best classical; classical: best setting of its grid):\n\n"
            + table(["task", "method", "setting", "PSNR dB", "SSIM", "s / Mpx"], rows_all))


def _label(img, text, width):
    """`img` scaled to `width` under a white strip with up to two lines of `text` ("\n" splits)."""
    img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA) \
        if img.shape[1] != width else img
    lines = text.split("\n")
    strip = np.full((4 + 14 * len(lines), width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line[: width // 7], (3, 13 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([strip, img], 0)


def grid_image(clean, panels, width=236, gap=4):
    """Columns clean | degraded | best classical | base | base + adapter (labelled): the whole
    photo on top, below it a 1:1 crop where the degraded (or, for clean, the base) differs most."""
    diff = np.abs(panels[1][1].astype(np.float32) - clean).mean(2)
    if not diff.any() and len(panels) > 3:
        diff = np.abs(panels[3][1].astype(np.float32) - clean).mean(2)
    c = min(width, *clean.shape[:2])
    score = cv2.boxFilter(diff, -1, (c, c), normalize=True, borderType=cv2.BORDER_CONSTANT)
    h2, w2 = c // 2, c // 2
    inner = score[h2:clean.shape[0] - c + h2 + 1, w2:clean.shape[1] - c + w2 + 1]
    y, x = np.unravel_index(np.argmax(inner), inner.shape)
    cols = []
    for text, img in [("clean\n(scores: PSNR / SSIM)", clean)] + panels:
        col = np.concatenate([_label(img, text, width), np.full((gap, width, 3), 255, np.uint8),
                              _label(img[y:y + c, x:x + c], "1:1 crop", width)], 0)
        cols += [col, np.full((col.shape[0], gap, 3), 255, np.uint8)]
    return np.concatenate(cols[:-1], 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="base checkpoint (default: the shipped colora/weights/base.safetensors)")
    ap.add_argument("--adapter-dir", help="folder holding <task>/ adapter folders (default: next to --model, "
                                          "then the shipped colora/weights/adapters)")
    ap.add_argument("--no-adapters", action="store_true",
                    help="the base alone (judge a base during pre-training, before its adapters exist)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), help=f"any of {' '.join(TASKS)} (or comma-separated)")
    ap.add_argument("--photos", type=int, help="use the first N held-out photos (default: all 8)")
    ap.add_argument("--size", type=int, help="downscale photos to this long side (for quick tests)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tta", action="store_true", help="run colora with its self-ensemble (colora restore --tta)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vs_classical")
    ap.add_argument("--json", type=Path, help="results JSON (default: OUT/results.json)")
    ap.add_argument("--jpeg", type=Path, help="also write each grid as DIR/<task>.jpg (quality 85)")
    ap.add_argument("--grid-photo", type=int, default=0, help="which photo the grids show (index)")
    args = ap.parse_args(argv)
    tasks = [t for arg in args.tasks for t in arg.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        ap.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")

    import torch

    from colora.inference.refine import RULES
    from colora.inference.restorer import Restorer

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    photos = load_photos(args.photos, args.size)
    if not photos:
        ap.error(f"no photos in {PHOTOS}")
    machine = f"CPU: {common_machine()}"
    load = os.getloadavg()
    print(f"machine: {machine}\nload average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"photos: {len(photos)} held-out ({', '.join(p[0] for p in photos)}), "
          f"{sum(p[1].shape[0] * p[1].shape[1] for p in photos) / 1e6:.2f} Mpx per task\n")

    if args.tta:
        print("colora with --tta: every forward is the 8-transform self-ensemble\n")
    base = Restorer.from_files(args.model, tta=args.tta)
    warm = photos[0][1][:64, :64]
    base.restore(warm)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.jpeg:
        args.jpeg.mkdir(parents=True, exist_ok=True)
    results, t0 = {}, time.time()
    for task in tasks:
        adapted = None if task == "clean" or args.no_adapters else \
            Restorer.from_files(args.model, [task], adapter_dir=args.adapter_dir, tta=args.tta)
        unrefined = None if adapted is None or task not in RULES else \
            Restorer.from_files(args.model, [task], adapter_dir=args.adapter_dir, refine="off", tta=args.tta)
        for r in (adapted, unrefined):
            if r is not None:
                r.restore(warm)
        res, outputs, _ = run_task(task, photos, base, adapted, unrefined)
        results[task] = res
        g = min(args.grid_photo, len(photos) - 1)
        cls = res["best_classical"]
        panels = [("input (untouched)" if task == "clean" else "degraded", outputs["input"][g]),
                  (f"best classical: {cls}", outputs[cls][g]), ("base alone", outputs["base"][g])]
        if adapted is not None:
            panels.append((f"base + {task} adapter", outputs["base + adapter"][g]))
        else:  # clean: the base's change, amplified x4
            amp = np.clip(np.abs(outputs["base"][g].astype(np.int16) - photos[g][1]) * 4, 0, 255).astype(np.uint8)
            panels.append(("|base - clean| x4\n(no adapter)", amp))
        panels = [(t if "x4" in t else "{}\n{:.2f} dB / {:.3f}".format(t, *_score(img, photos[g][1])), img)
                  for t, img in panels]
        grid = grid_image(photos[g][1], panels)
        cv2.imwrite(str(args.out / f"grid_{task}.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if args.jpeg:
            cv2.imwrite(str(args.jpeg / f"{task}.jpg"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"{task}: done ({time.time() - t0:.0f} s)", file=sys.stderr)

    text = report(results)
    noise = results.get("noise")
    if noise:
        by = {}
        for i, p in enumerate(noise["photos"]):
            for name, v in noise["methods"].items():
                by.setdefault(p["variant"], {}).setdefault(name, []).append(v["per_photo_psnr"][i])
        text += "\n\nnoise by level (PSNR dB): " + "; ".join(
            f"{lvl}: " + ", ".join(f"{n} {np.mean(v):.2f}" for n, v in d.items()) for lvl, d in by.items())
    end = os.getloadavg()
    text += f"\n\nload average at end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}; {time.time() - t0:.0f} s in all"
    print(text)
    (args.out / "table.md").write_text(f"machine: {machine}\n\n{text}\n")
    doc = {"machine": machine, "load_start": load, "load_end": end, "size": args.size, "tta": args.tta,
           "model": str(args.model or "shipped"), "adapter_dir": str(args.adapter_dir or "shipped"),
           "photos": [p[0] for p in photos], "psnr_cap_db": PSNR_CAP, "tasks": results}
    json_path = args.json or args.out / "results.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1, default=float))
    return doc


if __name__ == "__main__":
    main()
