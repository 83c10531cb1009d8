"""`colora compare`: train several adapter methods on the same data and seed, one table.

Each (method, pairs) cell runs `colora finetune` in its own process, so its peak memory (RSS) is its
own, and appends a JSON line to `<experiments_root>/<name>_compare/results.jsonl`; a rerun skips the
cells already there. The table (markdown + CSV) has: method, trainable %, adapter size, PSNR/SSIM
on the held-out validation pairs, train time and peak memory.
"""
import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from colora.adapters.registry import METHOD_NAMES
from colora.errors import ColoraError
from colora.fileio import atomic_write_text

CHILD = """
import json, sys, time
from colora.inference.memory import peak_rss
from colora.tuning.finetune import finetune
from colora.options import load_options
opts = load_options(sys.argv[1], sys.argv[3:])
t = time.time()
s = finetune(opts)
s["seconds"] = time.time() - t
s["peak_rss_mb"] = peak_rss() / 2**20
open(sys.argv[2], "w").write(json.dumps(s))
"""


def run_cell(opt_path, method, pairs, root, name, overrides, label=None):
    """One cell in a fresh interpreter; `label` names a variant of `method` (lora@budget)."""
    label = label or method
    cell = f"{label}_p{pairs}" if pairs else label
    out = Path(root) / f"{name}_compare" / f"{cell}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    sets = list(overrides) + [f"adapter.method={method}", f"name={name}_compare/{cell}",
                              f"path.experiments_root={root}"]
    if label == "lora@budget":
        sets.append("adapter.match_budget=true")
    if pairs:
        sets.append(f"datasets.train.num_pairs={pairs}")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(opt_path), str(out), *sets],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise ColoraError(f"compare: {cell} failed: {lines[-1] if lines else 'no output'}")
    s = json.loads(out.read_text())
    weights = Path(s["adapter"]) / "adapter_model.safetensors"
    return {"method": label, "pairs": pairs or "", "trainable_percent": round(s["trainable_percent"], 3),
            "adapter_kb": round(weights.stat().st_size / 1024, 1), "psnr": round(s["adapted"].get("psnr", 0), 3),
            "ssim": round(s["adapted"].get("ssim", 0), 4), "base_psnr": round(s["base"].get("psnr", 0), 3),
            "train_s": round(s["seconds"], 1), "peak_rss_mb": round(s["peak_rss_mb"], 0)}


def compare(opt_path, methods, pairs=(None,), overrides=(), log=print, match_budget=False):
    """Run every (method, pairs) cell not yet in results.jsonl; return all rows. With
    `match_budget`, LoRA takes the uniform rank that fills adapter.budget (row 'lora@budget'),
    the paper's equal-budget comparison with CoLoRA."""
    from colora.options import load_options

    opts = load_options(opt_path, overrides)
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise ColoraError(f"unknown method '{unknown[0]}'; choose from: {', '.join(METHOD_NAMES)}")
    folder = Path(opts.path.experiments_root) / f"{opts.name}_compare"
    results = folder / "results.jsonl"
    done = [json.loads(x) for x in results.read_text().splitlines() if x.strip()] if results.is_file() else []
    labels = {m: "lora@budget" if match_budget and m == "lora" else m for m in methods}
    for p in pairs:
        for m in methods:
            if any(r["method"] == labels[m] and str(r["pairs"]) == str(p or "") for r in done):
                continue
            t = time.time()
            log(f"compare: training {m}" + (f" on {p} pairs" if p else "") + " ...")
            row = run_cell(opt_path, m, p, opts.path.experiments_root, opts.name, overrides, labels[m])
            folder.mkdir(parents=True, exist_ok=True)
            with open(results, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            done.append(row)
            log(f"compare: {labels[m]}: PSNR {row['psnr']:.2f} dB ({time.time() - t:.0f} s)")
    rows = [r for r in done if r["method"] in labels.values() and str(r["pairs"]) in {str(p or "") for p in pairs}]
    write_tables(folder, rows)
    return rows, folder


HEADERS = ["method", "pairs", "trainable_percent", "adapter_kb", "psnr", "ssim", "base_psnr", "train_s", "peak_rss_mb"]


def markdown(rows):
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(str(r[h]) for h in HEADERS) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_tables(folder, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADERS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(folder) / "compare.csv", buf.getvalue())
    atomic_write_text(Path(folder) / "compare.md", markdown(rows))
