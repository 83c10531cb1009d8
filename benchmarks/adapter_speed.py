"""Adapters on NAFNet-w32 (SIDD configuration): size, inference cost, swap time, training cost.

    python benchmarks/adapter_speed.py [--size 256] [--train-steps 6]

1. trainable % and adapter file size per method at the default settings (CoLoRA: ranks from a
   short FAIG on one photo, budget 7 %; LoRA: rank 8 everywhere it applies);
2. forward time of the base vs a merged vs an unmerged LoRA adapter (ratios);
3. swap time A -> B in merged mode (unmerge A + merge B in place) and the switch in unmerged mode;
4. fine-tuning step time and peak memory (RSS) of each method relative to full fine-tuning of the
   plain network (AdamW, PSNR loss, batch 4, 128 x 128). Each method trains in its own process so
   its peak RSS is its own.
Weights are random (beta/gamma ~ N(0, 0.1) so every block contributes): costs do not depend on them.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, timeit  # noqa: E402
from colora.adapters.registry import METHOD_NAMES  # noqa: E402
from colora.inference.memory import peak_rss  # noqa: E402

METHODS = list(METHOD_NAMES)


def base_model():
    from colora.archs import OFFICIAL_CONFIGS, build_arch

    torch.manual_seed(0)
    model = build_arch(OFFICIAL_CONFIGS["NAFNet-SIDD-width32"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    return model


def photo_batch(batch, size, seed=0):
    import cv2
    import numpy as np
    from skimage import data

    imgs = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    gts = [cv2.resize(imgs[i % 4], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
           for i in range(batch)]
    gt = torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).contiguous()
    lq = (gt + torch.from_numpy(rng.normal(0, 0.1, gt.shape).astype(np.float32))).clamp(0, 1)
    return lq, gt


def colora_ranks(model):
    """CoLoRA's {layer path: rank} from a quick FAIG (2 steps, one 64-px photo, theta_t from 3 Adam
    steps), at the budget of 7 % with the extras CoLoRA trains."""
    from colora.adapters import MethodOpt, get_method
    from colora.tuning.allocation import allocate_ranks
    from colora.tuning.faig import faig_scores, layer_table
    from colora.tuning.finetune import quick_finetune

    lq, gt = photo_batch(1, 64)
    target = quick_finetune(model, [(lq, gt)], 3, 1e-3)
    scores = faig_scores(model, {k: v.clone() for k, v in model.state_dict().items()}, target, [(lq, gt)], steps=2)
    extra = get_method("colora").extra_params(model, MethodOpt())
    ranks, _, _ = allocate_ranks(model, layer_table(model, scores), 0.07, extra)
    return ranks


def attach(model, method, tmp):
    from colora.adapters import attach_adapter

    ranks = None
    if method == "colora":
        ranks_file = Path(tmp) / "colora_ranks.json"
        if not ranks_file.is_file():
            ranks_file.write_text(json.dumps(colora_ranks(model)))
        ranks = json.loads(ranks_file.read_text())
    calib = [photo_batch(2, 64)[0]] if method == "sct" else None
    return attach_adapter(model, {"method": method, "rank": 8}, name=method, calib=calib, ranks=ranks)


def child(method, tmp, steps):
    """One method's fine-tuning step time and peak RSS (run in its own process)."""
    from colora.adapters import trainable_parameters
    from colora.training.losses import PSNRLoss

    model = base_model()
    if method == "plain":
        params = list(model.parameters())
    else:
        attach(model, method, tmp)
        params = trainable_parameters(model)
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-4)
    loss_fn = PSNRLoss()
    lq, gt = photo_batch(4, 128)

    def step():
        loss = loss_fn(model(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = timeit(step, repeat=steps, warmup=2)
    rss = peak_rss() / 2**20
    print(json.dumps({"method": method, "step_s": t, "peak_rss_mb": rss}))


def sizes_and_inference(tmp, size):
    from colora.adapters import (count_trainable, keep_merged_copies, merge_adapter, save_adapter, set_adapter,
                                 unmerge_adapter)

    rows = []
    model = base_model().eval()
    for m in METHODS:
        attach(model, m, tmp)
        n, pct = count_trainable(model, m)
        folder = save_adapter(model, Path(tmp) / m, name=m)
        kb = (folder / "adapter_model.safetensors").stat().st_size / 1024
        rows.append([m, f"{n:,}", f"{pct:.2f} %", f"{kb:,.0f}"])
    x = photo_batch(1, size)[0]

    def fwd():
        with torch.inference_mode():
            model(x)

    set_adapter(model, None)
    t_base = timeit(fwd, repeat=3)
    set_adapter(model, "lora")
    t_unmerged = timeit(fwd, repeat=3)
    merge_adapter(model)
    t_merged = timeit(fwd, repeat=3)
    swap = timeit(lambda: (set_adapter(model, "colora"), set_adapter(model, "lora")), repeat=5) / 2
    keep_merged_copies(model)  # the first swap to each makes its copy; timeit's warm-up pays it
    kept = timeit(lambda: (set_adapter(model, "colora"), set_adapter(model, "lora")), repeat=5) / 2
    keep_merged_copies(model, False)
    unmerge_adapter(model)
    switch = timeit(lambda: (set_adapter(model, "colora"), set_adapter(model, "lora")), repeat=20) / 2
    return rows, (t_base, t_merged, t_unmerged, swap, kept, switch)


def verdict(ok):
    return "met" if ok else "not met"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--skip-train", action="store_true", help="only sizes, inference and swap times")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.tmp, args.train_steps)
    tmp = tempfile.mkdtemp(prefix="colora_adapter_speed_")
    print(f"machine: {machine()}")
    rows, (t_base, t_merged, t_unmerged, swap, kept, switch) = sizes_and_inference(tmp, args.size)
    print("\nNAFNet-SIDD-width32 (29.2 M parameters), default settings per method\n")
    print(table(["method", "trainable", "% of base", "adapter file (KB)"], rows))
    print(f"\nforward 1x3x{args.size}x{args.size} (inference_mode, fp32, NCHW)\n")
    print(table(["", "ms", "vs base", "target", ""], [
        ["base", f"{t_base * 1e3:.0f}", "1.00x", "", ""],
        ["LoRA merged", f"{t_merged * 1e3:.0f}", f"{t_merged / t_base:.3f}x", "<= 1.01x", verdict(t_merged / t_base <= 1.01)],
        ["LoRA unmerged", f"{t_unmerged * 1e3:.0f}", f"{t_unmerged / t_base:.3f}x", "<= 1.10x", verdict(t_unmerged / t_base <= 1.10)],
        ["swap A->B, merged", f"{swap * 1e3:.1f}", "", "<= 20 ms", verdict(swap <= 0.020)],
        ["swap A->B, merged, copies kept", f"{kept * 1e3:.2f}", "", "<= 20 ms", verdict(kept <= 0.020)],
        ["switch A->B, unmerged", f"{switch * 1e3:.3f}", "", "<= 1 ms", verdict(switch <= 0.001)]]))
    if args.skip_train:
        return
    results = {}
    for m in ["plain"] + METHODS:
        out = subprocess.run([sys.executable, __file__, "--child", m, "--tmp", tmp,
                              "--train-steps", str(args.train_steps)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{m}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        results[m] = json.loads(out.stdout.strip().splitlines()[-1])
    plain = results["plain"]
    train_rows = [["full fine-tuning (plain network)", f"{plain['step_s'] * 1e3:.0f}", "1.00x",
                   f"{plain['peak_rss_mb']:.0f}", "1.00x", ""]]
    for m in METHODS:
        if m not in results:
            continue
        r = results[m]
        ts, mem = r["step_s"] / plain["step_s"], r["peak_rss_mb"] / plain["peak_rss_mb"]
        target = f"time {verdict(ts <= 0.9)}, memory {verdict(mem <= 0.75)}" if m in ("colora", "lora") else ""
        train_rows.append([m, f"{r['step_s'] * 1e3:.0f}", f"{ts:.2f}x", f"{r['peak_rss_mb']:.0f}", f"{mem:.2f}x", target])
    print("\nfine-tuning step, batch 4 x 128 x 128, AdamW + PSNR loss (targets for CoLoRA/LoRA: <= 0.9x time, <= 0.75x memory)\n")
    print(table(["method", "ms / step", "vs full", "peak RSS (MB)", "vs full", "targets"], train_rows))


if __name__ == "__main__":
    main()
