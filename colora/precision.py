"""Which floating-point precision to compute in, from what the hardware does natively.

bf16 pays off only where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16): there it
trains ~1.3x and infers ~2x faster than fp32; elsewhere PyTorch emulates it and it runs about 10x
slower (measured on an AVX2-only AMD EPYC). So `auto` picks bf16 only where it is native, and an
explicit bf16 request on other hardware is worth a warning. One home for this rule: training and
restoring both ask `resolve_precision`.
"""
import functools
import logging

import torch

log = logging.getLogger("colora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=None)
def cpu_flags():
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device="cpu"):
    """True where bf16 matmuls and convolutions run in hardware on `device`."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(precision, device="cpu"):
    """The autocast dtype for `precision` on `device`, or None for plain fp32.

    auto: bf16 where native, else fp32 (on CUDA without bf16: fp16). fp16 on a CPU is refused,
    since CPU fp16 kernels are emulated and much slower than fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "auto":
        if native_bf16(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 is for CUDA devices; on a CPU use bf16 (where native) or fp32")
    if precision == "bf16" and not native_bf16(device):
        log.warning(f"this {device.type.upper()} has no native bf16, so bf16 runs emulated "
                    "(about 10x slower than fp32 on a CPU); use precision auto or fp32")
    return _DTYPES[precision]
