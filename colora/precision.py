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


def cpu_info():
    """(model name, feature flags) of /proc/cpuinfo: the one reader of it, for the precision rule
    and for the machine line every benchmark prints ("unknown CPU", no flags where there is none)."""
    model, flags = "unknown CPU", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


@functools.lru_cache(maxsize=None)
def cpu_flags():
    """The CPU feature flags (cached: the precision rule asks on every run)."""
    return cpu_info()[1]


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


# ---- inference ---------------------------------------------------------------------------------
# Inference casts the whole network (not autocast: autocast re-casts every weight on every forward,
# measured 1.2-1.4x slower). `auto` runs bf16 only where it is native *and* a timing of both
# precisions on this machine finds it faster: native bf16 kernels exist for convolutions and matmuls,
# but a network dominated by depthwise convs and elementwise ops may not gain. The timing runs once
# per process per network (`key`), a few forwards of one tile, and is cached in _MEASURED.
_MEASURED = {}  # key -> True when bf16 was measured faster than fp32 in this process
BF16_MIN_GAIN = 0.9  # bf16 must take at most this fraction of the fp32 time to be picked


def bf16_faster(measure, key):
    """Whether bf16 beats fp32 by BF16_MIN_GAIN, from `measure()` -> (fp32 s, bf16 s), once per key."""
    if key not in _MEASURED:
        t32, t16 = measure()
        _MEASURED[key] = t16 <= BF16_MIN_GAIN * t32
        log.debug(f"precision auto: fp32 {t32 * 1e3:.0f} ms, bf16 {t16 * 1e3:.0f} ms per probe forward "
                  f"-> {'bf16' if _MEASURED[key] else 'fp32'}")
    return _MEASURED[key]


def inference_dtype(precision, device="cpu", force=False, measure=None, key=None):
    """The dtype to run a restoring network in (the whole network cast to it).

    fp32 -> float32. bf16 -> bfloat16 where native; elsewhere one warning line and float32, unless
    `force`. fp16 -> float16, CUDA only (CPU fp16 kernels are emulated). auto -> bfloat16 only where
    native and `measure` (see bf16_faster) finds it faster, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    native = native_bf16(device)
    if precision == "fp32":
        return torch.float32
    if precision == "auto":
        if native and measure is not None and bf16_faster(measure, (device.type, key)):
            return torch.bfloat16
        return torch.float32
    if precision == "fp16":
        if device.type == "cpu" and not force:
            raise ValueError("precision fp16 is for CUDA devices; on a CPU use bf16 (where native) or fp32")
        return torch.float16
    if native or force:
        return torch.bfloat16
    log.warning(f"bf16: this {_describe(device)} has no native bf16 (it would run emulated, about 10x slower), "
                "so it runs in fp32; force bf16 with --force-bf16")
    return torch.float32


def _describe(device):
    if device.type == "cpu":
        return f"CPU ({torch.backends.cpu.get_cpu_capability()}, no avx512_bf16 / amx_bf16 flag)"
    return f"{device.type.upper()} device"
