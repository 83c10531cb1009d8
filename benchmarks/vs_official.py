"""Ours vs the official NAFNet / NAFNetLocal code (issue 16): ms, ratio and max |diff| per
precision and backend, on each kind of CPU it runs on.

    python benchmarks/vs_official.py [--sizes 256x256,640x424] [--repeat 3] [--threads 1] [--compile]
                                     [--profile]

`--compile` adds `colora restore --compile`'s path (torch.compile with inductor's freezing, one
compilation per shape, ~30 s each here) in fp32 and, where native, bf16; its first-call time is printed.

The official arch files (megvii-research/NAFNet, MIT) are vendored in benchmarks/_official as a
reference only. Both load the same weights strictly: NAFNet-SIDD-width32 with random weights
(beta/gamma ~ N(0, 0.1) so every block counts; speed does not depend on the values), TLC at train
size 256. Same input (the astronaut photo resized, sigma-25 noise), same threads, and the variants
alternate within each repeat so a neighbour's load hits them alike; the median is reported.
Ratios are against the official eager NAFNetLocal (what the official repo runs on full photos);
max |diff| and the PSNR change are against its output. Targets: best fp32 >= 2.0x; where bf16 is
native >= 3.5x with <= 0.05 dB; where it is not, `auto` is never slower than fp32.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine, table  # noqa: E402
from benchmarks.restore_speed import CONFIG, make_checkpoint, met, photo  # noqa: E402
from colora.archs import OFFICIAL_CONFIGS  # noqa: E402
from colora.metrics import calculate_psnr  # noqa: E402
from colora.precision import native_bf16  # noqa: E402
from colora.inference.restorer import load_model  # noqa: E402

TARGETS = {"fp32": 2.0, "bf16": 3.5, "dpsnr": 0.05}


def load_line():
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def official_nets(state):
    """The official NAFNet and NAFNetLocal (train size 256), the same weights loaded strictly."""
    from benchmarks._official.NAFNet_arch import NAFNet, NAFNetLocal

    cfg = {k: v for k, v in OFFICIAL_CONFIGS[CONFIG].items() if k != "type"}
    plain, local = NAFNet(**cfg), NAFNetLocal(**cfg, train_size=(1, 3, 256, 256))
    plain.load_state_dict(state, strict=True)
    local.load_state_dict(state, strict=True)
    return plain.eval(), local.eval()


def variants(ckpt, args, tmp):
    """[(label, precision, backend, fn(x) -> (1,3,h,w) float tensor)] in the order they alternate."""
    from colora.inference.runtime import TorchRunner

    state = {k: v for k, v in load_model(ckpt).state_dict().items()}
    plain, local = official_nets(state)

    def eager(net):
        def run(x):
            with torch.no_grad():
                return net(x).clamp(0, 1)
        return run

    out = [("official NAFNetLocal (TLC), eager", "fp32", "torch", eager(local)),
           ("official NAFNet (global pool), eager", "fp32", "torch", eager(plain)),
           ("ours: Restorer runner", "fp32", "torch", TorchRunner(load_model(ckpt), "fp32"))]
    if native_bf16():
        out.append(("ours: Restorer runner", "bf16", "torch", TorchRunner(load_model(ckpt), "bf16")))
    auto = TorchRunner(load_model(ckpt), "auto")
    out.append((f"ours: --precision auto (chose {auto.precision})", auto.precision, "torch", auto))
    if args.compile:  # frozen (inductor freezing): what `colora restore --compile` runs with one adapter
        for prec in ("fp32", "bf16") if native_bf16() else ("fp32",):
            out.append(("ours: --compile (frozen, fixed shapes)", prec, "torch.compile",
                        TorchRunner(load_model(ckpt), prec, compile=True)))
    try:
        from colora.inference.export import export
        from colora.inference.onnx import OnnxRunner

        onnx_path = Path(tmp) / "merged.onnx"
        export(onnx_path, ckpt)
        out.append(("ours: exported .onnx", "fp32", "onnxruntime", OnnxRunner(onnx_path, threads=torch.get_num_threads())))
    except Exception as exc:  # onnxruntime absent, or an export failure: say so, time the rest
        print(f"(onnxruntime row skipped: {exc})", file=sys.stderr)
    return out


def measure(runs, size, repeat):
    w, h = size
    clean, lq = photo(w, h)
    x = torch.from_numpy(lq).permute(2, 0, 1)[None].contiguous()
    outs, times = {}, {i: [] for i in range(len(runs))}
    first = {}
    for i, (*_, fn) in enumerate(runs):  # warm-up (oneDNN primitives, compile) and the outputs
        t = time.perf_counter()
        outs[i] = fn(x).float()
        first[i] = time.perf_counter() - t
    for _ in range(repeat):
        for i, (*_, fn) in enumerate(runs):
            t = time.perf_counter()
            fn(x)
            times[i].append(time.perf_counter() - t)
    ref = outs[0]
    p_ref = calculate_psnr(ref[0].permute(1, 2, 0).numpy(), clean)
    base = statistics.median(times[0])
    rows = []
    for i, (label, prec, backend, _) in enumerate(runs):
        t = statistics.median(times[i])
        p = calculate_psnr(outs[i][0].permute(1, 2, 0).numpy(), clean)
        rows.append({"label": label, "precision": prec, "backend": backend, "ms": t * 1e3, "ratio": base / t,
                     "diff": float((outs[i] - ref).abs().max()), "dpsnr": p - p_ref, "first_s": first[i]})
    return rows, p_ref


def profile(runs, size):
    from torch.profiler import ProfilerActivity, profile as torch_profile

    w, h = size
    x = torch.from_numpy(photo(w, h)[1]).permute(2, 0, 1)[None].contiguous()
    for label, prec, backend, fn in runs:
        if backend != "torch" or "auto" in label:
            continue
        fn(x)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(x)
        print(f"\n#### profile: {label} {prec}, one forward at {w}x{h}, top 8 by self CPU time\n")
        print("```\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8) + "\n```")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256x256,640x424", help="WxH list (default 256x256,640x424)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler top ops at the largest size")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="colora_vs_official_")
    ckpt = Path(tmp) / "w32.safetensors"
    make_checkpoint(ckpt)
    runs = variants(ckpt, args, tmp)
    print(f"machine: {machine()}")
    print(f"CPU capability (torch): {torch.backends.cpu.get_cpu_capability()}; native bf16: {native_bf16()}")
    verdicts = []
    for size in sizes:
        before = load_line()
        rows, p_ref = measure(runs, size, args.repeat)
        print(f"\n### {CONFIG}, {size[0]}x{size[1]} photo, {args.threads} thread(s), median of {args.repeat} "
              f"alternating runs ({before} before, {load_line()} after)\n")
        print(table(["variant", "precision", "backend", "ms", "vs official NAFNetLocal", "max |diff|", "Δ PSNR dB"],
                    [[r["label"], r["precision"], r["backend"], f"{r['ms']:.0f}", f"{r['ratio']:.2f}x",
                      f"{r['diff']:.1e}", f"{r['dpsnr']:+.4f}"] for r in rows]))
        print(f"\n(official NAFNetLocal: {p_ref:.3f} dB to the clean photo; random weights, so Δ PSNR says how far "
              "a path moves the output, not how well it restores)")
        for r in rows:
            if r["backend"] == "torch.compile":
                print(f"{r['label']} {r['precision']}: the first call (compiling this shape) took {r['first_s']:.1f} s")
        ours = [r for r in rows if r["label"].startswith("ours")]
        fp32 = max(r["ratio"] for r in ours if r["precision"] == "fp32")
        verdicts.append((f"{size[0]}x{size[1]}: best fp32 >= {TARGETS['fp32']}x", f"{fp32:.2f}x", met(fp32 >= TARGETS["fp32"])))
        bf = sorted((r for r in ours if r["precision"] == "bf16" and "auto" not in r["label"]), key=lambda r: -r["ratio"])
        if bf:
            ok = bf[0]["ratio"] >= TARGETS["bf16"] and abs(bf[0]["dpsnr"]) <= TARGETS["dpsnr"]
            verdicts.append((f"{size[0]}x{size[1]}: best bf16 >= {TARGETS['bf16']}x, <= {TARGETS['dpsnr']} dB",
                             f"{bf[0]['ratio']:.2f}x, {bf[0]['dpsnr']:+.4f} dB ({bf[0]['backend']})", met(ok)))
        auto = next(r for r in ours if "auto" in r["label"])
        ref32 = next(r for r in ours if r["precision"] == "fp32" and r["backend"] == "torch")
        verdicts.append((f"{size[0]}x{size[1]}: auto not slower than fp32 (5 % noise)",
                         f"{auto['ms']:.0f} vs {ref32['ms']:.0f} ms", met(auto["ms"] <= 1.05 * ref32["ms"])))
    print("\n### targets (issue 16)\n")
    print(table(["target", "measured", ""], verdicts))
    if args.profile:
        profile(runs, sizes[-1])


if __name__ == "__main__":
    main()
