"""Training speed of the tiny preset: iterations/s and images/s with 1 process and with 2 (DDP, gloo).

    python benchmarks/train_speed.py [--iters 40] [--warmup 10]

Runs the real command, `colora pretrain -opt colora/presets/pretrain/nafnet_tiny_prod.yml` (its network,
its batch of 8 per process, its PROD data on the bundled photos), for warmup + iters iterations in a
temporary experiments folder, with validation and checkpoints pushed past the end of the run
(val.val_freq and logger.save_checkpoint_freq = 10**9; the final validation and save come after the
last timed iteration). The rate is read from logs/metrics.jsonl ("it_per_s", logged every
iteration): the time between the end of the warm-up and the end of the run.

Rows: one process with torch's default threads (one per core) and with one thread; two processes
under torchrun (`python -m torch.distributed.run --standalone --nproc_per_node=2 -m colora.cli
pretrain ...`) with OMP_NUM_THREADS=1 each -- 2 processes x 1 thread on 2 cores -- once with the
preset's batch per process (global batch 16) and once with half of it (global batch 8, the same
work per iteration as one process). images/s = it/s x global batch. Other jobs on the machine
share the CPU: the load average before each run is printed with it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table  # noqa: E402
from colora.options import load_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "colora" / "presets" / "pretrain" / "nafnet_tiny_prod.yml"


def run(nproc, threads, batch, iters, warmup, workdir):
    """One training run; (it/s after the warm-up, load average before it)."""
    name = f"speed_{nproc}p_{threads}t_b{batch}"
    sets = [f"name={name}", f"path.experiments_root={workdir}", f"train.total_iter={warmup + iters}",
            f"datasets.train.batch_size_per_gpu={batch}", "val.val_freq=1000000000",
            "logger.save_checkpoint_freq=1000000000", "logger.print_freq=1", "logger.use_tb_logger=false"]
    launcher = [sys.executable, "-m", "colora.cli"] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "colora.cli"]
    cmd = launcher + ["pretrain", "-opt", str(PRESET)] + [a for s in sets for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = (Path(workdir) / name / "logs" / "metrics.jsonl").read_text().splitlines()
    rate = {r["iter"]: r["it_per_s"] for r in map(json.loads, lines) if r["kind"] == "train"}
    # it_per_s(i) = i / (seconds since the loop started), so seconds(i) = i / it_per_s(i)
    end, start = warmup + iters, warmup
    return iters / (end / rate[end] - start / rate[start]), load


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations (default 40)")
    parser.add_argument("--warmup", type=int, default=10, help="iterations before timing (default 10)")
    args = parser.parse_args()
    opts = load_options(PRESET)
    batch, net = opts.datasets["train"].batch_size_per_gpu, opts.network_g.to_dict()
    size = opts.datasets["train"].gt_size
    print(f"machine: {machine()}")
    print(f"preset: {PRESET.name}: NAFNet width {net['width']}, enc {net['enc_blk_nums']}, "
          f"{size}x{size} patches, batch {batch} per process; {args.iters} iterations after {args.warmup}\n")
    configs = [(1, None, batch), (1, 1, batch), (2, 1, batch), (2, 1, batch // 2)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="colora-train-speed-") as workdir:
        for nproc, threads, per_proc in configs:
            its, load = run(nproc, threads, per_proc, args.iters, args.warmup, workdir)
            global_batch = nproc * per_proc
            shown = threads if threads is not None else f"{torch.get_num_threads()} (default)"
            rows.append([nproc, shown, per_proc, global_batch, f"{its:.2f}", f"{its * global_batch:.1f}",
                         f"{load:.1f}"])
    print(table(["processes", "threads/process", "batch/process", "global batch", "it/s", "images/s",
                 "load avg before"], rows))


if __name__ == "__main__":
    main()
