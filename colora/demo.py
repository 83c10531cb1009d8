"""`colora demo`: the whole method on a laptop CPU in a few minutes, with the shipped weights.

For each task (rain, raindrop, rain_raindrop, noise, blur, haze) held-out crops of the bundled
photos are degraded with that task's degradation and restored by (a) the PROD base alone and (b) the
base with the task's CoLoRA adapter, swapped in place on one model. It also computes a quick FAIG
profile for one task, times the adapter swap, and writes index.html, summary.md and PNG grids.
"""
import html
import json
import time
from pathlib import Path

import cv2
import numpy as np

from colora.degradations.tasks import RESTORATION_TASKS
from colora.errors import ColoraError
from colora.fileio import atomic_write_text
from colora.imageio import bundled_photos, write_image
from colora.metrics import calculate_psnr

HELD_OUT = ("chelsea", "motorcycle_left")  # never used by the fine-tuning presets' training pairs


def crops(size, per_photo=1):
    """Deterministic centre-ish crops of the held-out photos."""
    out = []
    for name, img in bundled_photos(HELD_OUT).items():
        h, w = img.shape[:2]
        for k in range(per_photo):
            y = (h - size) // 2 + k * size // 2
            x = (w - size) // 2 - k * size // 2
            y, x = min(max(y, 0), h - size), min(max(x, 0), w - size)
            out.append((f"{name}{k}", img[y:y + size, x:x + size]))
    return out


def run_demo(out_dir, model_path=None, adapter_dir=None, size=192, per_photo=1, faig_task="rain_raindrop",
             log=print):
    """Run the demo into `out_dir`; returns the per-task table (list of dicts)."""
    from colora.adapters import load_adapter, merge_adapter, set_adapter
    from colora.degradations.tasks import degrade_task
    from colora.inference.restorer import WEIGHTS_DIR, Restorer, default_model_path, find_adapter, load_model

    t0 = time.time()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    model_path = Path(model_path) if model_path else default_model_path()
    model = load_model(model_path)
    search = [adapter_dir, model_path.parent, WEIGHTS_DIR / "adapters"]
    for task in RESTORATION_TASKS:
        load_adapter(model, find_adapter(task, search), activate=False)
    merge_adapter(model)
    restorer = Restorer(model, adapters=[])
    log(f"loaded the base {model_path.name} and {len(RESTORATION_TASKS)} adapters")
    rows, swaps = [], []
    samples = crops(size, per_photo)
    for ti, task in enumerate(RESTORATION_TASKS):
        base_p, ad_p, in_p, cells = [], [], [], []
        for si, (name, clean) in enumerate(samples):
            lq, _ = degrade_task(clean, task, np.random.default_rng([7, ti, si]))
            set_adapter(model, None)
            base = restorer.restore(lq)
            t = time.perf_counter()
            set_adapter(model, task)
            swaps.append(time.perf_counter() - t)
            adapted = restorer.restore(lq)
            in_p.append(calculate_psnr(lq, clean))
            base_p.append(calculate_psnr(base, clean))
            ad_p.append(calculate_psnr(adapted, clean))
            names = []
            for label, img in (("degraded", lq), ("base", base), ("adapter", adapted), ("clean", clean)):
                f = f"images/{task}_{name}_{label}.png"
                write_image(out / f, img)
                names.append(f)
            cells.append((name, names, in_p[-1], base_p[-1], ad_p[-1]))
        row = {"task": task, "input_psnr": float(np.mean(in_p)), "base_psnr": float(np.mean(base_p)),
               "adapter_psnr": float(np.mean(ad_p)), "cells": cells}
        row["grid"] = write_grid(out / f"grid_{task}.png", out, cells)
        rows.append(row)
        log(f"{task:14s} degraded {row['input_psnr']:6.2f} dB  base {row['base_psnr']:6.2f} dB  "
            f"adapter {row['adapter_psnr']:6.2f} dB")
    swap_ms = 1000 * float(np.median(swaps))
    faig_png = quick_faig(model_path, faig_task, out, log)
    elapsed = time.time() - t0
    heldout = heldout_rows() if model_path == WEIGHTS_DIR / "base.safetensors" else None
    write_summary(out, rows, swap_ms, faig_task, faig_png, elapsed, heldout)
    write_html(out, rows, swap_ms, faig_task, faig_png, elapsed, heldout)
    return rows, swap_ms


HELDOUT_NOTE = ("On photos no training step used, degraded by an implementation written apart from "
                "colora's (benchmarks/vs_classical.py, the shipped weights; PSNR dB / SSIM, mean of {n} photos). "
                "colora wins a task when base + adapter beats the best classical filter by at least 1 dB.")


def heldout_rows():
    """(photos, [(task, input, best classical, base, adapter, verdict)]) of colora/weights/heldout.json
    (the shipped weights' held-out benchmark, scripts/pack_weights.py heldout), or None without it."""
    from colora.inference.restorer import WEIGHTS_DIR

    path = WEIGHTS_DIR / "heldout.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    rows = []
    for task, r in doc["tasks"].items():
        cls, ad = r["best_classical"], r["adapter"]
        verdict = "—" if ad is None else "wins" if ad[0] >= cls[1] + 1.0 else \
            "ahead by less than 1 dB" if ad[0] > cls[1] else "loses"
        rows.append((task, f"{r['input'][0]:.2f} / {r['input'][1]:.3f}", f"{cls[1]:.2f} / {cls[2]:.3f} {cls[0]}",
                     f"{r['base'][0]:.2f} / {r['base'][1]:.3f}", f"{ad[0]:.2f} / {ad[1]:.3f}" if ad else "—", verdict))
    return len(doc["photos"]), rows


def quick_faig(model_path, task, out, log):
    """A small FAIG run (few steps, few pairs) on the plain base for one task: faig.png."""
    import torch

    from colora.tuning import faig
    from colora.data.build import build_dataset
    from colora.tuning.finetune import batches_of, quick_finetune
    from colora.inference.restorer import load_model

    t = time.time()
    model = load_model(model_path)
    ds = build_dataset({"type": "TaskDataset", "task": task, "gt_size": 64, "num_pairs": 8,
                        "photos": ["astronaut", "coffee", "rocket"], "seed": 3}, phase="train")
    batches = batches_of(ds, 8)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.enable_grad():
        target = quick_finetune(model, batches, 30, 1e-3)
        scores = faig.faig_scores(model, base, target, batches, steps=8)
    rows = faig.layer_table(model, scores)
    faig.save_profile(out / "faig.json", rows, {"task": task, "steps": 8, "images": 8, "tune_iter": 30})
    png = faig.plot_profile(out / "faig.png", rows, title=f"FAIG per layer, task {task}")
    top = sorted(rows, key=lambda r: -r["score"])[:3]
    log(f"FAIG ({task}, {time.time() - t:.0f} s): top layers " + ", ".join(r["name"] for r in top))
    return png


def write_grid(path, out, cells):
    tiles = []
    for name, files, *_ in cells:
        row = [cv2.cvtColor(cv2.imread(str(out / f)), cv2.COLOR_BGR2RGB) for f in files]
        tiles.append(np.concatenate(row, axis=1))
    write_image(path, np.concatenate(tiles, axis=0).astype(np.float32) / 255)
    return path.name


def write_summary(out, rows, swap_ms, faig_task, faig_png, elapsed, heldout=None):
    lines = ["# colora demo", "", f"Held-out crops of {', '.join(HELD_OUT)}; PSNR (dB) against the clean crop.", "",
             "| task | degraded | base alone | base + adapter | adapter gain |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['input_psnr']:.2f} | {r['base_psnr']:.2f} | {r['adapter_psnr']:.2f} | "
                     f"{r['adapter_psnr'] - r['base_psnr']:+.2f} |")
    lines += ["", f"Adapter swap on one merged model: {swap_ms:.1f} ms (median).",
              f"FAIG profile of task {faig_task}: faig.png." if faig_png else "", f"Total time: {elapsed:.0f} s.", ""]
    if heldout:
        lines += ["## Held-out benchmark", "", HELDOUT_NOTE.format(n=heldout[0]), "",
                  "| task | degraded | best classical | base alone | base + adapter | colora |", "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in heldout[1]] + [""]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def write_html(out, rows, swap_ms, faig_task, faig_png, elapsed, heldout=None):
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>colora demo</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{width:192px;image-rendering:pixelated}"
             "td,th{padding:4px 8px;text-align:center}table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}"
             "</style></head><body><h1>colora demo</h1>",
             f"<p>One PROD-pre-trained base, one CoLoRA adapter per task, swapped in place "
             f"({swap_ms:.1f} ms per swap). Crops of photos the adapters never saw in training (the PROD base "
             f"was pre-trained on all bundled photos). Total {elapsed:.0f} s.</p>",
             "<table><tr><th>task</th><th>degraded</th><th>base alone</th><th>base + adapter</th><th>clean</th></tr>"]
    for r in rows:
        for name, files, p_in, p_base, p_ad in r["cells"]:
            imgs = "".join(f"<td><img src='{e(f)}' alt='{e(f)}'><br>{lab}</td>" for f, lab in
                           zip(files, (f"{p_in:.2f} dB", f"{p_base:.2f} dB", f"<b>{p_ad:.2f} dB</b>", "reference")))
            parts.append(f"<tr><th>{e(r['task'])}<br><small>{e(name)}</small></th>{imgs}</tr>")
    parts.append("</table>")
    if heldout:
        parts.append(f"<h2>On photos it never saw</h2><p>{e(HELDOUT_NOTE.format(n=heldout[0]))}</p><table><tr>"
                     + "".join(f"<th>{h}</th>" for h in ("task", "degraded", "best classical", "base alone",
                                                         "base + adapter", "colora")) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in heldout[1]]
        parts.append("</table>")
    if faig_png:
        parts.append(f"<h2>FAIG: which layers matter for {e(faig_task)}</h2><img src='faig.png' alt='faig.png' "
                     "style='width:100%;image-rendering:auto'>")
    parts.append("<h2>Next</h2><pre>colora finetune -opt colora/presets/finetune/noise.yml "
                 "--set datasets.train.type=PairedFolderDataset --set datasets.train.dataroot_lq=my/lq "
                 "--set datasets.train.dataroot_gt=my/gt</pre></body></html>")
    atomic_write_text(out / "index.html", "\n".join(parts))


def check_weights():
    from colora.inference.restorer import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "base.safetensors").is_file():
        raise ColoraError("the demo needs the shipped weights (colora/weights/); run scripts/make_default_weights.sh")
    return json.loads((WEIGHTS_DIR / "MANIFEST.json").read_text()) if (WEIGHTS_DIR / "MANIFEST.json").is_file() else {}
