"""Shared by the benchmark scripts: the machine description and a timer."""
import os
import platform
import statistics
import time

import torch


def machine():
    """One line: CPU model, cores, the ISA extensions that matter for torch (and whether bf16 is
    native, which decides `precision: auto`), torch version, threads."""
    from colora.precision import cpu_info

    model, flags = cpu_info()
    model = model if model != "unknown CPU" else platform.processor() or model
    isa = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                   ("amx_bf16", "AMX-BF16")) if flag in flags]
    native = "yes" if {"avx512_bf16", "amx_bf16"} & flags else "no"
    return (f"{model}, {os.cpu_count()} cores ({', '.join(isa) or 'no AVX'}; native bf16 {native}), "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def timeit(fn, repeat=5, warmup=2):
    """Median wall time of `fn()` in seconds after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(headers, rows):
    """A markdown table as a string."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
