"""One Trainer for PROD pre-training and adapter fine-tuning (one loop, read top to bottom).

Pre-training trains every weight of `network_g`. Fine-tuning receives a model with an adapter
attached (colora.adapters) and trains only that adapter; the loop is the same. Everything the loop
does is in `fit`: data, forward, loss, backward, clip, step, EMA, logs, validation, checkpoints.
"""
import contextlib
import logging
import math
import os
import signal
import sys

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn
from tqdm import tqdm

from colora.archs import build_arch, use_onednn
from colora.checkpoint import load_checkpoint, save_checkpoint
from colora.training.distributed import IterationSampler, broadcast_flags, cleanup_distributed, setup_distributed
from colora.errors import AdapterError, ColoraError, OptionsError
from colora.training.experiment import (Experiment, Timer, flat_options, load_state, options_diff, rng_states,
                               set_rng_states)
from colora.training.losses import build_loss
from colora.training.schedule import build_scheduler, restore_scheduler
from colora.metrics import psnr_torch, ssim_torch
from colora.options import Options, dump_options
from colora.precision import resolve_precision

log = logging.getLogger("colora")


class TrainingError(ColoraError):
    """Training cannot go on (a NaN loss, say); the message says what was kept."""


class Trainer:
    def __init__(self, opts, model=None, auto_resume=False, adapter_info=None, datasets=None, archive=True):
        """`model`: a prepared model with an active adapter (fine-tuning); None = build `network_g`.
        `datasets`: (train, val) already built by the caller; None = build them from the options.
        `archive`: a fresh run moves an existing experiment folder aside (False: the caller did)."""
        # A worker restarted by torchrun's elastic agent continues from the newest checkpoint.
        restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
        self.opts, self.auto_resume = opts, auto_resume or restarted
        self.dist = setup_distributed()
        self.exp = Experiment(opts.path.experiments_root, opts.name, writer=self.dist.is_main)
        self.adapter_info = adapter_info or {}
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        if opts.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(opts.manual_seed)
        # datasets first: their errors (missing folder, unmatched files) come before anything is written
        self.train_set, self.val_set = datasets if datasets is not None else self._datasets()
        self.model = model if model is not None else self._build_model()
        self.model.to(self.dist.device)
        self.memory_format = torch.channels_last if opts.train.channels_last else torch.contiguous_format
        use_onednn(self.model.to(memory_format=self.memory_format))  # fp32 convs through oneDNN
        try:
            self.amp_dtype = resolve_precision(opts.train.precision, self.dist.device)
        except ValueError as e:
            raise ColoraError(f"train.precision: {e}") from None
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        self.finetune = model is not None
        if self.finetune:
            from colora.adapters import get_hub

            self.hub = get_hub(self.model)
            self.params = self.hub.trainable_parameters()
        else:
            self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ColoraError("nothing to train: the model has no trainable parameter")
        if archive and not self.auto_resume and opts.path.resume_state is None:
            self.exp.archive_existing()
        self.exp.create()
        self.net = self.model
        if self.dist.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        # speed settings for fixed-size patches on a GPU; validation (whole images) uses self.model
        self._was_cudnn_benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = opts.train.cudnn_benchmark or self._was_cudnn_benchmark
        if opts.train.compile:
            try:
                self.net = torch.compile(self.net, backend=opts.train.compile_backend)
            except Exception as e:  # an unknown backend, or one whose compiler is missing
                raise ColoraError(f"train.compile_backend '{opts.train.compile_backend}': {e}") from None
        t = opts.train
        optim = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[t.optim_g.type]
        self.optimizer = optim(self.params, lr=t.optim_g.lr, betas=tuple(t.optim_g.betas),
                               weight_decay=t.optim_g.weight_decay, eps=t.optim_g.eps)
        self.scheduler = build_scheduler(self.optimizer, t)
        self.loss_fn = build_loss(t.pixel_opt)
        self.ema = [p.detach().clone() for p in self.params] if t.ema_decay > 0 else None
        self.iter, self.best = 0, {"psnr": -math.inf, "iter": 0}
        self._stop = None

    # ---- setup ---------------------------------------------------------------------------------
    def _datasets(self):
        from colora.data.build import build_dataset

        sets = self.opts.datasets
        if "train" not in sets:
            raise ColoraError("options have no datasets.train section; add one (see colora/presets/pretrain/)")
        train = build_dataset(sets["train"], self.opts.degradations, phase="train")
        val = build_dataset(sets["val"], self.opts.degradations, phase="val") if "val" in sets else None
        return train, val

    def _build_model(self):
        if self.opts.network_g.type is None:
            raise OptionsError("network_g: ~ (the base checkpoint's own architecture) is for fine-tuning; "
                               "pre-training needs network_g with a type, e.g. {type: NAFNet, width: 32}")
        model = build_arch(self.opts.network_g)
        path = self.opts.path
        if path.pretrain_adapter:  # pre-training starts from pretrain_network_g only
            raise OptionsError("path.pretrain_adapter continues an adapter: it is for fine-tuning (colora finetune)")
        if path.pretrain_network_g:
            load_checkpoint(model, path.pretrain_network_g, strict=path.strict_load_g, param_key=path.param_key_g)
            log.info(f"loaded {path.pretrain_network_g}")
        return model

    def _loader(self, start_iter):
        d = self.opts.datasets["train"]
        sampler = IterationSampler(len(self.train_set), d.batch_size_per_gpu, seed=self.opts.manual_seed,
                                   start_iter=start_iter, rank=self.dist.rank,
                                   world_size=self.dist.world_size, shuffle=d.use_shuffle)
        return torch.utils.data.DataLoader(self.train_set, batch_size=d.batch_size_per_gpu, sampler=sampler,
                                           num_workers=d.num_worker_per_gpu,
                                           persistent_workers=d.num_worker_per_gpu > 0)

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self):
        """Train to `train.total_iter`; returns a summary dict. Resumable at any checkpoint."""
        opts, t, lg = self.opts, self.opts.train, self.opts.logger
        self._resume()
        self.exp.save_options(dump_options(opts))
        if self.iter == 0 and self.val_set is not None and self.dist.is_main:
            self.validate(record_input=True)
        batches = iter(self._loader(self.iter))
        handlers = self._catch_signals()
        bar = tqdm(total=t.total_iter, initial=self.iter, disable=not self.dist.is_main, mininterval=1.0,
                   dynamic_ncols=True, desc=opts.name, file=sys.stderr)
        timer, start_iter, running = Timer(), self.iter, []
        try:
            while self.iter < t.total_iter:
                batch = next(batches)
                lq, gt = (batch[k].to(self.dist.device, memory_format=self.memory_format) for k in ("lq", "gt"))
                self.net.train()
                with torch.autocast(self.dist.device.type, dtype=self.amp_dtype or torch.bfloat16,
                                    enabled=self.amp_dtype is not None):
                    pred = self.net(lq)
                loss = self.loss_fn(pred.float(), gt)
                stop, bad = self._flags(loss)
                if bad:
                    raise TrainingError(self._nan_message(loss))
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if t.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                if self.ema is not None:
                    self.update_ema()
                self.iter += 1
                running.append(loss.item())
                lr = self.optimizer.param_groups[0]["lr"]
                bar.update(1)
                bar.set_postfix(loss=f"{running[-1]:.4f}", lr=f"{lr:.2e}", refresh=False)
                if self.iter % lg.print_freq == 0 or self.iter == t.total_iter:
                    rate = (self.iter - start_iter) / max(timer.elapsed(), 1e-9)
                    self.exp.append_metrics({"kind": "train", "iter": self.iter, "loss": running[-1],
                                             "loss_mean": sum(running) / len(running), "lr": lr,
                                             "it_per_s": rate})
                    eta = (t.total_iter - self.iter) / max(rate, 1e-9)
                    log.debug(f"iter {self.iter}/{t.total_iter} loss {running[-1]:.5f} lr {lr:.3e} "
                              f"{rate:.2f} it/s eta {eta / 60:.1f} min")
                    running = []
                if self.val_set is not None and self.dist.is_main and (
                        self.iter % opts.val.val_freq == 0 or self.iter == t.total_iter):
                    self.validate()
                if self.iter % lg.save_checkpoint_freq == 0 or self.iter == t.total_iter or stop:
                    self.save()
                if stop:
                    name = signal.Signals(self._stop).name if self._stop else "a signal"
                    log.info(f"stopped by {name} at iteration {self.iter}; the state is saved: "
                             "rerun with --auto_resume to continue")
                    return self.summary(interrupted=True)
        finally:
            bar.close()
            self._restore_signals(handlers)
            self.exp.plot_curves()
        return self.summary()

    def _flags(self, loss):
        """(stop requested, loss not finite) agreed by all ranks."""
        bad = not torch.isfinite(loss.detach()).all().item()
        return broadcast_flags((self._stop is not None, bad), self.dist)

    def _nan_message(self, loss):
        last = self.exp.latest_state()
        kept = f"the last good state is {last}" if last else "no checkpoint had been saved yet"
        return (f"the loss became {loss.item()} at iteration {self.iter + 1}; training stopped and {kept}. "
                "Lower train.optim_g.lr or set train.grad_clip")

    def update_ema(self):
        """EMA of the trained weights with a warm-up of the decay, min(decay, (1 + t) / (10 + t)):
        with a fixed 0.999 the average of a 2,000-iteration run would still hold 13 % of the random
        initial weights (TensorFlow's ExponentialMovingAverage uses the same num_updates rule)."""
        decay = min(self.opts.train.ema_decay, (1 + self.iter) / (10 + self.iter))
        get_ema_multi_avg_fn(decay)(self.ema, [p.detach() for p in self.params], None)

    # ---- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, record_input=False):
        """PSNR/SSIM on the validation set (with the EMA weights when EMA is on)."""
        metrics = self.opts.val.metrics
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=1, num_workers=0)
        sums, inputs, n = {k: 0.0 for k in metrics}, {k: 0.0 for k in metrics}, 0
        saved = 0
        self.model.eval()
        with self.ema_weights():
            for batch in loader:
                lq, gt = batch["lq"].to(self.dist.device), batch["gt"].to(self.dist.device)
                pred = self.model(lq).clamp(0, 1)
                for name, m in metrics.items():
                    fn = psnr_torch if m.type in ("calculate_psnr", "psnr") else ssim_torch
                    sums[name] += fn(pred, gt, m.crop_border, m.test_y_channel).sum().item()
                    if record_input:
                        inputs[name] += fn(lq.clamp(0, 1), gt, m.crop_border, m.test_y_channel).sum().item()
                if self.opts.val.save_img and saved < self.opts.val.num_save_img:
                    self._save_image(pred[0], batch["key"][0])
                    saved += 1
                n += lq.shape[0]
        result = {k: v / max(n, 1) for k, v in sums.items()}
        record = {"kind": "val", "iter": self.iter, **result}
        if record_input:
            record.update({f"input_{k}": v / max(n, 1) for k, v in inputs.items()})
        if "psnr" in result and result["psnr"] > self.best["psnr"]:
            self.best = {"psnr": result["psnr"], "iter": self.iter}
        record["best_psnr"], record["best_iter"] = self.best["psnr"], self.best["iter"]
        self.exp.append_metrics(record)
        log.info(f"validation at {self.iter}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items())
                 + (", input " + ", ".join(f"{k} {v / max(n, 1):.4f}" for k, v in inputs.items()) if record_input else ""))
        return result

    def _save_image(self, tensor, key):
        from colora.imageio import tensor_to_image, write_image

        folder = self.exp.dir / "visualization"
        write_image(folder / f"{key}_{self.iter}.png", tensor_to_image(tensor))

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily put the EMA weights in the model (validation, saving)."""
        if self.ema is None:
            yield
            return
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, self.ema):
                p.copy_(e)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup):
                    p.copy_(b)

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self):
        """Weights (or the adapter) and the full training state of this iteration, atomically. A
        failed write (a full disk) stops the run in one line; the older states are kept."""
        if not self.dist.is_main:
            return
        try:
            self._save()
        except (OSError, AdapterError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            last = self.exp.latest_state()
            kept = f"the last good state {last} is kept" if last else "no earlier state exists"
            raise TrainingError(f"cannot save the checkpoint of iteration {self.iter} in '{self.exp.dir}' "
                                f"({reason}); {kept}: free some space and rerun with --auto_resume") from None

    def _save(self):
        keep = self.opts.logger.keep_checkpoints
        models = self.exp.models
        if self.finetune:
            from colora.adapters import save_adapter

            with self.ema_weights():
                info = dict(self.adapter_info, training={"iteration": self.iter, "best_val_psnr": self.best["psnr"]})
                for folder in (models / f"adapter_{self.iter}", models / "adapter_latest"):
                    save_adapter(self.model, folder, info=info)
            self.exp.prune(models, r"adapter_(\d+)", keep)
        else:
            state = self.model.state_dict()
            ema = None
            if self.ema is not None:
                with self.ema_weights():
                    ema = {k: v.clone() for k, v in self.model.state_dict().items()}
            for name in (f"net_g_{self.iter}.safetensors", "net_g_latest.safetensors"):
                save_checkpoint(models / name, state, params_ema=ema, network_g=self.opts.network_g,
                                extra_metadata={"train_size": self.opts.datasets["train"].gt_size, "iter": self.iter})
            self.exp.prune(models, r"net_g_(\d+)\.safetensors", keep)
        self.exp.save_state(self.iter, self._state(), keep)

    def _state(self):
        return {"iter": self.iter, "options": flat_options(self.opts.to_dict()),
                "params": [p.detach().clone() for p in self.params],
                "ema": self.ema, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "best": self.best, "rng": rng_states()}

    def _read_resume_state(self):
        """(path, state) to resume from, or (None, None). path.resume_state is taken as given; with
        --auto_resume the newest readable state, if its options match this run's."""
        explicit = self.opts.path.resume_state
        if explicit is not None:
            return explicit, load_state(explicit)
        if not self.auto_resume:
            return None, None
        candidates = self.exp.states_newest_first()
        for path in candidates:
            try:
                state = load_state(path)
            except ColoraError as exc:
                log.warning(f"{exc}; trying the state before it")
                continue
            diff = options_diff(state.get("options") or {}, flat_options(self.opts.to_dict())) \
                if "options" in state else []
            if diff:
                more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
                raise ColoraError(f"--auto_resume: the state {path} was saved with other options: "
                                  f"{'; '.join(diff[:3])}{more}; use the options it was saved with, or rerun "
                                  "without --auto_resume to start afresh (the old run is archived)")
            return path, state
        if candidates:
            raise ColoraError(f"--auto_resume: no training state in '{self.exp.states}' can be read; rerun "
                              "without --auto_resume to start afresh (the old run is archived)")
        self.exp.truncate_metrics(-1)  # a run that never saved a state starts over: so do its logs
        return None, None

    def _resume(self):
        path, state = self._read_resume_state()
        if state is None:
            return
        if len(state["params"]) != len(self.params) or any(
                a.shape != b.shape for a, b in zip(state["params"], self.params)):
            raise ColoraError(f"resume state '{path}' was saved by another model or adapter; "
                              "check network_g / adapter or start a new experiment name")
        with torch.no_grad():
            for p, s in zip(self.params, state["params"]):
                p.copy_(s)
        if self.ema is not None and state.get("ema") is not None:
            self.ema = [e.clone() for e in state["ema"]]
        self.optimizer.load_state_dict(state["optimizer"])
        restore_scheduler(self.scheduler, state["scheduler"], self.opts.train)
        self.best = state["best"]
        set_rng_states(state["rng"])
        self.iter = int(state["iter"])
        self.exp.truncate_metrics(self.iter)
        log.info(f"resumed from {path} at iteration {self.iter}")

    # ---- signals and the end -------------------------------------------------------------------
    def _catch_signals(self):
        def handler(signum, frame):
            self._stop = signum
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return old

    @staticmethod
    def _restore_signals(old):
        for sig, h in old.items():
            signal.signal(sig, h)

    def summary(self, interrupted=False):
        return {"name": self.opts.name, "rank": self.dist.rank, "iter": self.iter, "interrupted": interrupted,
                "best_psnr": self.best["psnr"], "best_iter": self.best["iter"],
                "experiment": str(self.exp.dir)}

    def close(self):
        torch.use_deterministic_algorithms(self._was_deterministic)
        torch.backends.cudnn.benchmark = self._was_cudnn_benchmark
        self.exp.close()
        cleanup_distributed()


def pretrain(opts: Options, auto_resume: bool = False) -> dict:
    """Pre-train `network_g` (PROD by default) as the options say; returns the summary dict."""
    trainer = Trainer(opts, auto_resume=auto_resume)
    try:
        return trainer.fit()
    finally:
        trainer.close()
