"""Fine-tune one adapter per task: base -> (FAIG -> rank allocation) -> adapter -> Trainer -> folder.

`colora finetune -opt colora/presets/finetune/<task>.yml` runs it; `colora faig` runs only the FAIG part;
`colora compare` runs several methods on the same data and seed (colora.tuning.compare).
"""
import copy
import dataclasses
import logging
import os
import shutil
from pathlib import Path

import torch

from colora.tuning import faig
from colora.tuning.allocation import allocate_ranks, format_table, uniform_rank
from colora.adapters.base import TaskRun
from colora.archs import build_arch
from colora.checkpoint import load_checkpoint
from colora.errors import ColoraError, OptionsError
from colora.options import Options
from colora.training.experiment import Experiment
from colora.metrics import psnr_torch, ssim_torch

log = logging.getLogger("colora")


def base_network_g(opts):
    """(base checkpoint path, its NetworkOpt): path.pretrain_network_g (~ = the shipped base), and
    `network_g` of the options, or with `network_g: ~` the architecture the checkpoint records."""
    from colora.options import network_options

    path = opts.path.pretrain_network_g
    if path is None:
        from colora.inference.restorer import default_model_path

        path = default_model_path()
    if opts.network_g.type is not None:
        return path, opts.network_g
    from colora.checkpoint import checkpoint_network_g, load_state_dict, read_metadata

    return path, network_options(checkpoint_network_g(path, load_state_dict(path), read_metadata(path)))


def load_base(opts):
    """The frozen base of a fine-tuning run (path.pretrain_network_g), checked against network_g."""
    path, opts.network_g = base_network_g(opts)
    model = build_arch(opts.network_g)
    load_checkpoint(model, path, strict=True, param_key=opts.path.param_key_g)
    return model, str(path)


def task_datasets(opts):
    from colora.data.build import build_dataset

    if "train" not in opts.datasets:
        raise ColoraError("options have no datasets.train section (see colora/presets/finetune/)")
    train = build_dataset(opts.datasets["train"], opts.degradations, phase="train")
    val = build_dataset(opts.datasets["val"], opts.degradations, phase="val") if "val" in opts.datasets else None
    return train, val


def batches_of(dataset, n, batch=4, epoch=0):
    """The first `n` items of a dataset as (lq, gt) batches (FAIG pairs, SCT calibration)."""
    keys = [(epoch, i % len(dataset)) for i in range(n)]
    out = []
    for start in range(0, n, batch):
        items = [dataset[k] for k in keys[start:start + batch]]
        out.append((torch.stack([it["lq"] for it in items]), torch.stack([it["gt"] for it in items])))
    return out


@torch.no_grad()
def evaluate_model(model, dataset):
    """Mean PSNR / SSIM (RGB, no crop) of `model` on a validation dataset."""
    model.eval()
    psnr = ssim = 0.0
    for i in range(len(dataset)):
        it = dataset[i]
        pred = model(it["lq"][None]).clamp(0, 1)
        psnr += psnr_torch(pred, it["gt"][None]).item()
        ssim += ssim_torch(pred, it["gt"][None]).item()
    return {"psnr": psnr / len(dataset), "ssim": ssim / len(dataset)}


def quick_finetune(model, batches, iters, lr):
    """theta_t for FAIG: a short full fine-tune of a copy of the base on the task pairs (Adam)."""
    tuned = copy.deepcopy(model).train()
    for p in tuned.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    for i in range(iters):
        lq, gt = batches[i % len(batches)]
        loss = (tuned(lq) - gt).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in tuned.state_dict().items()}


def run_faig(opts, model, train_set, out_dir, target_path=None):
    """FAIG profile of `model` on the task: writes faig.json and faig.png into `out_dir`."""
    f = opts.adapter.faig
    batches = batches_of(train_set, f.faig_images)
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if target_path:
        from colora.checkpoint import load_state_dict

        target_state = load_state_dict(target_path)
    else:
        log.info(f"FAIG: fine-tuning a copy of the base for {f.faig_tune_iter} iterations to get theta_t")
        target_state = quick_finetune(model, batches, f.faig_tune_iter, opts.train.optim_g.lr)
    scores = faig.faig_scores(model, base_state, target_state, batches, steps=f.faig_steps)
    rows = faig.layer_table(model, scores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"task": opts.adapter.task, "steps": f.faig_steps, "images": f.faig_images, "tune_iter": f.faig_tune_iter,
            "theta_t": target_path or "short full fine-tune"}
    faig.save_profile(out_dir / "faig.json", rows, meta)
    faig.plot_profile(out_dir / "faig.png", rows, title=f"FAIG per layer ({opts.adapter.task or opts.name})")
    return rows


class FinetuneRun(TaskRun):
    """One fine-tuning run as a method's `prepare` hook sees it: the base, the adapter config and
    the task data, and the task-driven choices of colora.tuning (FAIG, rank allocation)."""

    def __init__(self, opts, adapter, model, train_set, exp_dir):
        self.opts, self.adapter, self.model, self.train_set, self.exp_dir = opts, adapter, model, train_set, exp_dir

    def inputs(self, count):
        return [lq for lq, _ in batches_of(self.train_set, count)]

    def contributions(self):
        """The task's FAIG rows: `faig_profile` (copied into the experiment folder) or measured now."""
        profile = self.adapter.faig.faig_profile
        if not profile:
            return run_faig(self.opts, self.model, self.train_set, self.exp_dir)
        rows = faig.load_profile(profile)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        copy_to = self.exp_dir / "faig.json"  # unless it is that file (a rerun reusing its own profile)
        if not copy_to.exists() or not copy_to.samefile(profile):
            shutil.copy(profile, copy_to)
        faig.plot_profile(self.exp_dir / "faig.png", rows)
        return rows

    def allocate_ranks(self, extra):
        budget = self.adapter.allocation.budget
        ranks, table, total = allocate_ranks(self.model, self.contributions(), budget, extra)
        log.info("CoLoRA ranks (budget %.1f %%, %d trainable parameters):\n%s", 100 * budget, total, format_table(table))
        return ranks, table

    def uniform_rank(self, extra):
        budget = self.adapter.allocation.budget
        rank = uniform_rank(self.model, budget, extra)
        log.info("uniform LoRA rank %d fills the budget of %.1f %%", rank, 100 * budget)
        return rank


def finetune(opts: Options, auto_resume: bool = False) -> dict:
    """Train the adapter `opts.adapter` describes on the task data; returns a summary dict. What
    the method needs from the task first (CoLoRA: FAIG ranks; SCT: calibration images; ...) its
    own `prepare` hook asks for."""
    from colora.adapters import attach_adapter, count_trainable, get_method, save_adapter
    from colora.training.trainer import Trainer

    torch.manual_seed(opts.manual_seed)  # LoRA's A init and FAIG's theta_t: same seed, same adapter
    model, base_path = load_base(opts)
    train_set, val_set = task_datasets(opts)
    exp_dir = Path(opts.path.experiments_root) / opts.name
    adapter = opts.adapter
    if not auto_resume and opts.path.resume_state is None:  # before FAIG writes there; rank 0 only
        adapter = _archive(opts, exp_dir)
    name = adapter.name or adapter.task or opts.name
    base_metrics = evaluate_model(model, val_set) if val_set is not None else {}
    info = {"data": describe_data(opts), "base_checkpoint": base_path}
    table = None
    if opts.path.pretrain_adapter:
        info["started_from"] = continue_adapter(model, opts.path.pretrain_adapter, adapter.method, name)
    else:
        prepared = get_method(adapter.method).prepare(FinetuneRun(opts, adapter, model, train_set, exp_dir))
        attach_adapter(model, prepared.adapter, name=name, calib=prepared.calib, ranks=prepared.ranks)
        table = prepared.table
    n, pct = count_trainable(model)
    log.info(f"adapter '{name}' ({adapter.method}): {n:,} trainable parameters, {pct:.2f} % of the base")
    trainer = Trainer(opts, model=model, auto_resume=auto_resume, adapter_info=info,
                      datasets=(train_set, val_set), archive=False)
    try:
        summary = trainer.fit()
        if summary["interrupted"] or not trainer.dist.is_main:
            return summary
        with trainer.ema_weights():
            adapted = evaluate_model(model, val_set) if val_set is not None else {}
            info["validation"] = {"base": base_metrics, "adapted": adapted}
            if table is not None:
                info["allocation"] = {r["name"]: r["rank"] for r in table}
            out = save_adapter(model, exp_dir / "adapter", info=info)
        for f in ("faig.json", "faig.png"):
            if (exp_dir / f).is_file():
                shutil.copy(exp_dir / f, out / f)
    finally:
        trainer.close()
    summary.update(adapter=str(out), trainable_params=n, trainable_percent=pct, base=base_metrics,
                   adapted=adapted)
    log.info(f"validation PSNR: base {base_metrics.get('psnr', float('nan')):.2f} dB -> adapted "
             f"{adapted.get('psnr', float('nan')):.2f} dB; adapter saved to {out}")
    if adapted.get("psnr", float("inf")) < base_metrics.get("psnr", float("-inf")):
        # issue 13: an adapter must never be worse than the base alone on its own task
        log.warning(f"the adapter is worse than the base alone on validation ({adapted['psnr']:.2f} < "
                    f"{base_metrics['psnr']:.2f} dB): train longer or with a lower lr, or restore with --strength < 1")
    return summary


def continue_adapter(model, directory, method, name):
    """Attach the adapter folder `directory` as the one to train (path.pretrain_adapter; peft's
    `is_trainable=True`): its layers, ranks and weights, on the base it was made for. Its method
    must be the run's `adapter.method`. Returns the folder, recorded in the new adapter's config."""
    from colora.adapters import get_hub, load_adapter

    if not Path(directory).is_dir():
        raise OptionsError(f"path.pretrain_adapter '{directory}' is not an adapter folder; give the folder "
                           "holding adapter_config.json")
    load_adapter(model, directory, name=name)
    hub = get_hub(model)
    found = hub.configs[name].get("method")
    if found != method:
        hub.remove(name)
        raise OptionsError(f"path.pretrain_adapter '{directory}' is a {found} adapter but "
                           f"adapter.method is {method}; set adapter.method: {found}")
    hub.configs[name].pop("validation", None)  # the new run records its own
    log.info(f"continuing adapter {directory} as '{name}'")
    return str(directory)


def _archive(opts, exp_dir):
    """Move an earlier run aside; returns opts.adapter, reading a FAIG profile reused from inside
    that run from its new place."""
    adapter = opts.adapter
    profile = Path(adapter.faig.faig_profile).resolve() if adapter.faig.faig_profile else None
    inside = exp_dir.resolve()
    archived = Experiment(opts.path.experiments_root, opts.name,
                          writer=os.environ.get("RANK", "0") == "0").archive_existing()
    if archived is not None and profile is not None and profile.is_relative_to(inside):
        moved = str(archived / profile.relative_to(inside))
        adapter = dataclasses.replace(adapter, faig=dataclasses.replace(adapter.faig, faig_profile=moved))
    return adapter


def describe_data(opts):
    d = opts.datasets.get("train")
    if d is None:
        return None
    if d.dataroot_lq:
        return f"paired folders {d.dataroot_lq} / {d.dataroot_gt}"
    if d.dataroot:  # a benchmark of colora.data
        pairs = f"{d.num_pairs} pairs (seed {d.seed})" if d.num_pairs else "all pairs"
        return f"{d.type} {' '.join(filter(None, (d.subset, d.split)))} at {d.dataroot}, {pairs}, {d.gt_size}px crops"
    src = d.dataroot_gt or "photos bundled with scikit-image"
    pairs = f"{d.num_pairs} fixed pairs" if d.num_pairs else "fresh pairs"
    return f"{d.type} task={d.task or '-'} from {src}, {pairs}, {d.gt_size}px crops"
