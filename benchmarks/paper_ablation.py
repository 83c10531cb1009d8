"""The paper's two ablations at CPU scale: pre-training (random init / fixed order / single
degradation / PROD, each fine-tuned fully) and fine-tuning method (full, decoder, uniform LoRA,
CoLoRA, SVDiff, DiffFit, SCT, BitFit on the PROD base), at 16 and 128 training pairs, over seeds.

    python benchmarks/paper_ablation.py --profile quick --jobs 2          # <= 90 min on 2 cores
    python benchmarks/paper_ablation.py --profile full --budget-minutes 120   # rerun to continue
    python benchmarks/paper_ablation.py --profile quick --report-only
    python benchmarks/paper_ablation.py --profile quick_corpus --pretrains prod,prod_dead_leaves --methods full

Every finished cell is one JSON line in OUT/results.jsonl; a rerun skips it, and `--budget-minutes`
stops starting cells once spent (running cells finish). The report (OUT/report.md + OUT/ablation.png,
benchmarks/ablation_report.py) is written after every run from whatever cells are done.

Data, chosen so nothing evaluated was seen in training: pre-training and fine-tuning use six of
the photos bundled with scikit-image; every cell is evaluated on the same fixed crops of the other
two (chelsea, motorcycle_left). The held-out tasks' degradations are excluded from every
pre-training mix (degradations.exclude), as the paper's real tasks are unseen by PROD. The presets
are the shipped ones (colora/presets/pretrain/nafnet_tiny_prod.yml, colora/presets/finetune/<task>.yml) with
the overrides below, so a cell is one `colora pretrain` / `colora finetune` run.
"""
import argparse
import contextlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from colora.adapters.registry import METHOD_NAMES  # noqa: E402

TRAIN_PHOTOS = ["astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"]
EVAL_PHOTOS = ["chelsea", "motorcycle_left"]
PRETRAINS = ("random", "fixed", "single", "prod")
# The paper's fine-tuning ablation compares these four, in this order; every other registered method
# follows, in the registry's order.
PAPER_METHODS = ("full", "decoder", "lora", "colora")
METHODS = PAPER_METHODS + tuple(m for m in METHOD_NAMES if m not in PAPER_METHODS)
# Learning rates: the adapters use the presets' 2e-3; full and decoder fine-tuning, which move
# every weight of their part, use the pre-training rate 1e-3 (the paper does not give its rates).
LR = {"full": 1e-3, "decoder": 1e-3}
# Variants for investigating a gap (`--methods colora,lora,colora_lora_only,...`): a method plus
# overrides, so one factor changes at a time.
NO_EXTRAS = ["adapter.train_bias=false", "adapter.train_norm=false", "adapter.train_layer_scale=false"]
EXTRAS = ["adapter.train_bias=true", "adapter.train_norm=true", "adapter.train_layer_scale=true"]
VARIANTS = {
    "colora_lora_only": ("colora", NO_EXTRAS, "CoLoRA ranks, no biases/norms/scales"),
    "lora_extras": ("lora", EXTRAS, "uniform LoRA + biases/norms/scales (same budget)"),
    "colora_faig50": ("colora", ["adapter.faig_steps=50", "adapter.faig_images=16", "adapter.faig_tune_iter=200"],
                      "CoLoRA, longer FAIG (50 steps, 16 images, 200 tune iterations)"),
    "colora_lr1e-3": ("colora", ["train.optim_g.lr=1e-3"], "CoLoRA at lr 1e-3"),
    "full_lr2e-3": ("full", ["train.optim_g.lr=2e-3"], "full fine-tuning at lr 2e-3"),
    "full_lr3e-4": ("full", ["train.optim_g.lr=3e-4"], "full fine-tuning at lr 3e-4"),
}
GREY = ["camera", "brick", "grass", "gravel", "coins", "moon", "page", "text", "clock"]
PRETRAIN_VARIANTS = {  # `--pretrains prod_more`: is the pre-training data what limits transfer?
    "prod_more": ("prod", [f"datasets.train.photos=[{','.join(TRAIN_PHOTOS + GREY)}]"],
                  "PROD on 15 photos (+ 9 grey ones)"),
    # issue 13: do procedural images help? (with quick_corpus: 29 photos + 29 dead-leaves images)
    "prod_dead_leaves": ("prod", ["datasets.train.dead_leaves=29"],
                         "PROD + dead leaves (29 images beside the photos)"),
}
TINY = ["network_g.width=8", "network_g.enc_blk_nums=[1,1]", "network_g.dec_blk_nums=[1,1]"]

PROFILES = {
    "quick": dict(pretrains=["random", "prod"], methods=["full", "lora", "colora", "bitfit"], tasks=["raindrop"],
                  pairs=[16, 128], seeds=[0, 1, 2], pretrain_iter=2000, finetune_iter=400, net=[],
                  gt_size=64, eval_size=96, eval_samples=24, faig=[]),
    "full": dict(pretrains=list(PRETRAINS), methods=list(METHODS), tasks=["raindrop", "rain_raindrop"],
                 pairs=[16, 128], seeds=[0, 1, 2], pretrain_iter=4000, finetune_iter=1000, net=[],
                 gt_size=64, eval_size=96, eval_samples=24, faig=[]),
    # issue 13, step 5: quick with the new pre-training data (PROD on the corpus photos, which hold
    # neither evaluation photo); fine-tuning and evaluation as in quick, so the two compare
    "quick_corpus": dict(pretrains=["random", "prod"], methods=["full", "lora", "colora", "bitfit"],
                         tasks=["raindrop"], pairs=[16, 128], seeds=[0, 1, 2], pretrain_iter=2000,
                         finetune_iter=400, net=[], gt_size=64, eval_size=96, eval_samples=24, faig=[],
                         pretrain_root=str(ROOT / "corpus" / "train")),
    # seconds, for the test: every code path of quick on an 8-wide 2-level NAFNet
    "toy": dict(pretrains=["random", "prod"], methods=["full", "lora", "colora", "bitfit"], tasks=["raindrop"],
                pairs=[4], seeds=[0, 1], pretrain_iter=6, finetune_iter=4, net=TINY, gt_size=32, eval_size=32,
                eval_samples=2, faig=["adapter.faig_steps=2", "adapter.faig_images=2", "adapter.faig_tune_iter=2",
                                      "adapter.budget=0.3"]),
}


def cells(p):
    """Pre-training cells, then fine-tuning cells ordered seed-first (paired comparisons fill early):
    every pre-training variant with full fine-tuning, and every method on the PROD base."""
    pre = [{"kind": "pretrain", "pretrain": v} for v in p["pretrains"]]
    ft = []
    for seed in p["seeds"]:
        for pairs in p["pairs"]:
            for task in p["tasks"]:
                runs = [(v, "full") for v in p["pretrains"] if v != "prod"]
                runs += [("prod", m) for m in p["methods"]] if "prod" in p["pretrains"] else []
                ft += [{"kind": "finetune", "pretrain": v, "method": m, "task": task, "pairs": pairs, "seed": seed}
                       for v, m in runs]
    return pre + ft


def cell_id(c):
    if c["kind"] == "pretrain":
        return f"pre_{c['pretrain']}"
    return f"{c['task']}_{c['pretrain']}_{c['method']}_p{c['pairs']}_s{c['seed']}"


def base_path(out, variant):
    if variant == "random":
        return out / "runs" / "pre_random.safetensors"
    return out / "runs" / f"pre_{variant}" / "models" / "net_g_latest.safetensors"


def pretrain_data(p):
    """The pre-training photos: the profile's folder (`pretrain_root`) or the six bundled TRAIN_PHOTOS."""
    root = p.get("pretrain_root")
    if root is None:
        return [f"datasets.train.photos=[{','.join(TRAIN_PHOTOS)}]"]
    if not Path(root).is_dir():
        raise SystemExit(f"pre-training folder '{root}' not found; make it with `python scripts/make_corpus.py -o corpus`")
    return [f"datasets.train.dataroot_gt={root}"]


def pretrain_sets(p, out, variant):
    n = p["pretrain_iter"]
    mode, extra, _ = PRETRAIN_VARIANTS.get(variant, ("prod" if variant == "random" else variant, [], ""))
    return p["net"] + [
        f"name=pre_{variant}", f"path.experiments_root={out / 'runs'}", "manual_seed=0",
        f"degradations.mode={mode}", f"degradations.exclude=[{','.join(p['tasks'])}]",
        *pretrain_data(p), f"datasets.train.gt_size={p['gt_size']}",
        f"datasets.val.photos=[{','.join(EVAL_PHOTOS)}]", f"datasets.val.gt_size={p['eval_size']}",
        f"datasets.val.num_samples={p['eval_samples']}", f"train.total_iter={n}",
        f"train.warmup_iter={min(50, n // 10)}", f"val.val_freq={max(n // 4, 1)}", f"logger.print_freq={n}",
        f"logger.save_checkpoint_freq={n}", "logger.keep_checkpoints=1"] + extra


def finetune_sets(p, out, c):
    n = p["finetune_iter"]
    method, extra, _ = VARIANTS.get(c["method"], (c["method"], [], ""))
    sets = p["net"] + p["faig"] + [
        f"name=ft/{cell_id(c)}", f"path.experiments_root={out / 'runs'}", f"manual_seed={c['seed']}",
        f"path.pretrain_network_g={base_path(out, c['pretrain'])}",
        f"path.param_key_g={'params' if c['pretrain'] == 'random' else 'params_ema'}",
        f"adapter.method={method}", f"datasets.train.num_pairs={c['pairs']}",
        f"datasets.train.seed={100 + c['seed']}", f"datasets.train.gt_size={p['gt_size']}",
        f"datasets.train.photos=[{','.join(TRAIN_PHOTOS)}]", f"datasets.val.photos=[{','.join(EVAL_PHOTOS)}]",
        f"datasets.val.gt_size={p['eval_size']}", f"datasets.val.num_samples={p['eval_samples']}",
        "datasets.val.seed=7", f"train.total_iter={n}", f"train.warmup_iter={min(20, n // 10)}",
        f"train.optim_g.lr={LR.get(method, 2e-3)}", f"val.val_freq={n}", f"logger.print_freq={n}",
        f"logger.save_checkpoint_freq={n}", "logger.keep_checkpoints=1"] + extra
    if method == "lora":
        sets.append("adapter.match_budget=true")  # uniform LoRA at CoLoRA's budget
    return sets


def run_cell(c, p, out, threads):
    """One cell in this process; its log (progress bars included) goes to OUT/runs/<cell>.log."""
    import torch

    from colora.options import load_options

    torch.set_num_threads(threads)
    logfile = out / "runs" / f"{cell_id(c)}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t = time.time()
    with open(logfile, "w") as fh, contextlib.redirect_stderr(fh):
        if c["kind"] == "pretrain":
            row = _pretrain(c, p, out)
        else:
            from colora.tuning.finetune import finetune

            opts = load_options(ROOT / "colora" / "presets" / "finetune" / f"{c['task']}.yml", finetune_sets(p, out, c))
            s = finetune(opts)
            size = (Path(s["adapter"]) / "adapter_model.safetensors").stat().st_size
            row = {"psnr": s["adapted"]["psnr"], "ssim": s["adapted"]["ssim"], "base_psnr": s["base"]["psnr"],
                   "trainable_percent": s["trainable_percent"], "trainable_params": s["trainable_params"],
                   "adapter_kb": size / 1024}
    return dict(c, id=cell_id(c), seconds=time.time() - t, iterations=p["pretrain_iter" if c["kind"] == "pretrain"
                                                                       else "finetune_iter"], **row)


def _pretrain(c, p, out):
    import torch

    from colora.archs import build_arch
    from colora.checkpoint import save_checkpoint
    from colora.options import load_options
    from colora.training.trainer import pretrain

    opts = load_options(ROOT / "colora" / "presets" / "pretrain" / "nafnet_tiny_prod.yml", pretrain_sets(p, out, c["pretrain"]))
    if c["pretrain"] == "random":  # the paper's "random init": the same network, seeded, untrained
        torch.manual_seed(0)
        model = build_arch(opts.network_g)
        save_checkpoint(base_path(out, "random"), model.state_dict(), network_g=opts.network_g.to_dict())
        return {}
    pretrain(opts)
    lines = (out / "runs" / f"pre_{c['pretrain']}" / "logs" / "metrics.jsonl").read_text().splitlines()
    vals = [json.loads(x) for x in lines if '"val"' in x]
    return {"prod_val_psnr": vals[-1].get("psnr"), "prod_val_input_psnr": vals[0].get("input_psnr"),
            "prod_val_curve": [[v["iter"], v.get("psnr")] for v in vals]}  # 4 points: did it plateau?


def run(profile, out, jobs=1, budget_minutes=None, threads=1, methods=None, pretrains=None, log=print):
    """Run the cells of `profile` (its methods and pre-trainings, or `methods` / `pretrains`) not yet
    in OUT/results.jsonl; returns the number run."""
    p = dict(PROFILES[profile], **({"methods": list(methods)} if methods else {}),
             **({"pretrains": list(pretrains)} if pretrains else {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {json.loads(x)["id"] for x in results.read_text().splitlines() if x.strip()} if results.is_file() else set()
    todo = [c for c in cells(p) if cell_id(c) not in done]
    log(f"profile {profile}: {len(cells(p)) - len(todo)} of {len(cells(p))} cells done, {len(todo)} to run")
    start, ran = time.time(), 0

    def over_budget():
        return budget_minutes is not None and time.time() - start >= 60 * budget_minutes

    def record(c, get):
        nonlocal ran
        try:
            row = get()
        except Exception as e:  # noqa: BLE001 -- one failed cell must not lose the others; a rerun retries it
            log(f"  {cell_id(c)}: FAILED: {type(e).__name__}: {e} (log: {out / 'runs' / (cell_id(c) + '.log')})")
            return
        with open(results, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        ran += 1
        done.add(row["id"])
        what = f"PSNR {row['psnr']:.2f} dB" if "psnr" in row else "base ready"
        log(f"  {row['id']}: {what} ({row['seconds']:.0f} s)")

    # a fine-tuning cell starts once its base is done, so the other job works while PROD pre-trains
    pending, running = list(todo), {}
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) if jobs > 1 else None
    with pool or contextlib.nullcontext():
        while True:
            ready = [c for c in pending if c["kind"] == "pretrain" or f"pre_{c['pretrain']}" in done]
            if ready and len(running) < max(jobs, 1) and not over_budget():
                c = ready[0]
                pending.remove(c)
                if pool is None:
                    record(c, lambda: run_cell(c, p, out, threads))
                else:
                    running[pool.submit(run_cell, c, p, out, threads)] = c
                continue
            if not running:
                break
            fut = next(as_completed(running))
            record(running.pop(fut), fut.result)
    if pending and over_budget():
        log(f"budget of {budget_minutes} min spent: stopping between cells; rerun to continue")
    elif pending:
        log(f"{len(pending)} cells not run: their pre-training failed (see its log); rerun to retry")
    return ran


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--out", type=Path, help="results folder (default benchmarks/ablation/<profile>)")
    ap.add_argument("--jobs", type=int, default=1, help="cells run at once, one process each (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per cell (default 1)")
    ap.add_argument("--budget-minutes", type=float, help="start no cell after this many minutes")
    ap.add_argument("--methods", help="comma-separated methods or investigation variants instead of the "
                    f"profile's (variants: {', '.join(VARIANTS)})")
    ap.add_argument("--pretrains", help="comma-separated pre-trainings instead of the profile's "
                    f"(variants: {', '.join(PRETRAIN_VARIANTS)}); each is fine-tuned fully")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the report from the results file")
    args = ap.parse_args(argv)
    methods = args.methods.split(",") if args.methods else None
    unknown = [m for m in methods or [] if m not in METHODS and m not in VARIANTS]
    if unknown:
        ap.error(f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS + tuple(VARIANTS))}")
    pretrains = args.pretrains.split(",") if args.pretrains else None
    unknown = [v for v in pretrains or [] if v not in PRETRAINS and v not in PRETRAIN_VARIANTS]
    if unknown:
        ap.error(f"unknown pre-training '{unknown[0]}'; choose from {', '.join(PRETRAINS + tuple(PRETRAIN_VARIANTS))}")
    out = args.out or ROOT / "benchmarks" / "ablation" / args.profile
    from benchmarks.ablation_report import write_report

    t, ran = time.time(), 0
    if not args.report_only:
        ran = run(args.profile, out, args.jobs, args.budget_minutes, args.threads, methods, pretrains,
            log=lambda m: print(m, file=sys.stderr))
    p = PROFILES[args.profile]
    report = write_report(out, args.profile, p, [cell_id(c) for c in cells(p)],
                          session_seconds=time.time() - t if ran else None,
                          variants={k: v[2] for k, v in {**VARIANTS, **PRETRAIN_VARIANTS}.items()},
                          image_link=os.path.relpath(out / "ablation.png", ROOT))  # as BENCHMARKS.md shows it
    print(report)


if __name__ == "__main__":
    main()
