"""Shared by the benchmark scripts: the machine description and a timer."""
import os
import platform
import statistics
import time

import torch


def machine():
    """One line: CPU model, cores, ISA extensions that matter for torch, torch version, threads."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                   ("amx_bf16", "AMX-BF16")) if flag in flags]
    return (f"{model}, {os.cpu_count()} cores ({', '.join(isa) or 'no AVX'}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


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
