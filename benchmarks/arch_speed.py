"""Forward time of NAFNet-w32 (SIDD configuration) on 1x3x256x256 in four CPU modes.

    python benchmarks/arch_speed.py [--repeat 5] [--size 256]

Modes: eager NCHW fp32 (the baseline), channels_last, channels_last + inference_mode,
channels_last + inference_mode + bf16 autocast, and the whole model cast to bf16 (what
`colora restore --bf16` runs). Prints each mode's median time and its speed-up
over the baseline, and how far the bf16 output is from fp32 on a real photo (astronaut, noisy).
The weights are random (no published checkpoint can be downloaded here) with NAFNet's layer scales
beta/gamma drawn at 0.1 scale so that every block contributes; speed does not depend on the values.
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, timeit  # noqa: E402
from colora.archs import OFFICIAL_CONFIGS, build_arch  # noqa: E402
from colora.metrics import calculate_psnr  # noqa: E402


def photo(size):
    from skimage import data

    clean = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    return clean, torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = build_arch(OFFICIAL_CONFIGS["NAFNet-SIDD-width32"]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    clean, x = photo(args.size)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.no_grad():
            return model(x)

    def channels_last():
        with torch.no_grad():
            return model_cl(x_cl)

    def inference():
        with torch.inference_mode():
            return model_cl(x_cl)

    def bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model_cl(x_cl).float()

    def bf16_weights():
        with torch.inference_mode():
            return model_bf(x_cl.to(torch.bfloat16)).float()

    rows, base = [], None
    out32 = eager()
    modes = [("eager NCHW fp32", eager, "fp32"), ("channels_last", channels_last, "fp32"),
             ("channels_last + inference_mode", inference, "fp32"), ("channels_last + bf16 autocast", bf16, "bf16"),
             ("channels_last + bf16 weights (colora restore --bf16)", bf16_weights, "bf16")]
    model_cl = model_bf = None
    for label, fn, _ in modes:
        if label != "eager NCHW fp32" and model_cl is None:
            import copy

            model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
            model_bf = copy.deepcopy(model_cl).to(torch.bfloat16)
        t = timeit(fn, repeat=args.repeat)
        base = base or t
        rows.append([label, f"{t * 1000:.0f}", f"{base / t:.2f}x"])
    out_bf = bf16()
    out_bw = bf16_weights()
    ref = out32[0].clamp(0, 1).permute(1, 2, 0).numpy()
    low = out_bf[0].clamp(0, 1).permute(1, 2, 0).numpy()
    p32, pbf = calculate_psnr(ref, clean), calculate_psnr(low, clean)
    print(f"machine: {machine()}")
    print(f"NAFNet-SIDD-width32, input 1x3x{args.size}x{args.size}, median of {args.repeat}\n")
    print(table(["mode", "ms / forward", "speed-up vs eager"], rows))
    print(f"\nbf16 vs fp32 on the astronaut photo (sigma 25 noise): PSNR to clean {p32:.3f} dB (fp32) vs "
          f"{pbf:.3f} dB (bf16), difference {pbf - p32:+.3f} dB; bf16 output vs fp32 output "
          f"{calculate_psnr(low, ref):.1f} dB")
    lw = out_bw[0].clamp(0, 1).permute(1, 2, 0).numpy()
    print(f"bf16 weights: PSNR to clean {calculate_psnr(lw, clean):.3f} dB, difference {calculate_psnr(lw, clean) - p32:+.3f} dB")


if __name__ == "__main__":
    main()
