"""Does the PROD pipeline keep up with training? Pairs per second vs training steps per second.

Pipeline: ProdDataset on the bundled photos (the tiny preset's `degradations` section), batches of
8 through a DataLoader with 0 and 2 workers, at 128x128 and at the preset's gt_size; the first
batch (worker start-up) is a warm-up. Training: the tiny NAFNet preset's network_g, batch 8 at the
preset's gt_size, AdamW + PSNRLoss, fed one pre-made batch so only the model's cost is timed.
Training needs `steps/s x 8` pairs per second; the last column says whether the pipeline supplies it.
On 2 cores the loader's workers and the training threads share the CPU, so the two rates add up
rather than overlap: this is an upper bound on what the pipeline can do alongside training.

Run: python benchmarks/prod_speed.py
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, table  # noqa: E402
from colora.archs import build_arch  # noqa: E402
from colora.data.build import build_dataset  # noqa: E402
from colora.training.losses import PSNRLoss  # noqa: E402
from colora.options import load_options  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / "colora" / "presets" / "pretrain" / "nafnet_tiny_prod.yml"
BATCH, BATCHES, STEPS = 8, 20, 30


def pairs_per_second(opts, size, workers):
    train = opts.datasets["train"]
    dataset = build_dataset({**train.to_dict(), "gt_size": size}, opts.degradations, phase="train")
    keys = [(epoch, i) for epoch in range(10_000) for i in range(len(dataset))][: (BATCHES + 1) * BATCH]
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, sampler=keys, num_workers=workers)
    batches = iter(loader)
    next(batches)  # warm-up: worker start-up, first decode
    start = time.perf_counter()
    count = sum(len(batch["key"]) for batch in batches)
    return count / (time.perf_counter() - start)


def steps_per_second(opts):
    size = opts.datasets["train"].gt_size
    dataset = build_dataset(opts.datasets["train"], opts.degradations, phase="train")
    batch = torch.utils.data.default_collate([dataset[(0, i % len(dataset))] for i in range(BATCH)])
    model = build_arch(opts.network_g)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.9))
    loss_fn = PSNRLoss()

    def step():
        loss = loss_fn(model(batch["lq"]), batch["gt"])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return STEPS / (time.perf_counter() - start), size


def main():
    opts = load_options(PRESET)
    print(f"machine: {machine()}")
    print(f"preset: {PRESET.name} (degradations: mode {opts.degradations.mode}, k_max {opts.degradations.k_max})\n")
    steps, size = steps_per_second(opts)
    need = steps * BATCH
    rows = []
    for px in sorted({128, size}):
        for workers in (0, 2):
            rate = pairs_per_second(opts, px, workers)
            verdict = (f"{rate / need:.1f}x what training needs" if px == size else "-")
            rows.append([f"{px}x{px}", workers, f"{rate:.1f}", verdict])
    print(table(["PROD pairs", "num_workers", "pairs/s", f"vs training at {size}x{size}"], rows))
    print()
    print(table(["tiny NAFNet training", "batch", "steps/s", "pairs/s consumed"],
                [[f"{size}x{size}, AdamW + PSNRLoss", BATCH, f"{steps:.2f}", f"{need:.1f}"]]))


if __name__ == "__main__":
    main()
