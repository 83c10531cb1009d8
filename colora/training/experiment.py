"""The experiment folder (BasicSR layout) and everything written into it.

    experiments/<name>/models/net_g_<iter>.safetensors, net_g_latest.safetensors  (pre-training)
    experiments/<name>/models/adapter_<iter>/, adapter_latest/                     (fine-tuning)
    experiments/<name>/training_states/<iter>.state    optimizer, scheduler, EMA, RNG states
    experiments/<name>/logs/options.yml, train.log, metrics.jsonl, curves.png, tb/

Every file is written atomically, so whatever is on disk is complete. A fresh run never mixes with an
earlier one: an existing folder is renamed `<name>_archived_<time>` first (as BasicSR does).
`--auto_resume` takes the newest state that can be read (a corrupt one is passed over with a
warning) and only if its recorded options match. Training states hold only tensors and plain Python
values and are read back with `torch.load(weights_only=True)`.
"""
import io
import json
import logging
import random
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from colora.errors import ColoraError
from colora.fileio import atomic_write_bytes, atomic_write_text, remove_stale_temps

log = logging.getLogger("colora")
STATE_KEYS = ("iter", "params", "optimizer", "scheduler", "best", "rng")
# Options a resumed run may change: how long and how often it logs, validates and saves.
RESUMABLE_CHANGES = ("name", "train.total_iter", "logger.", "val.", "path.resume_state", "path.experiments_root",
                     "datasets.train.num_worker_per_gpu", "datasets.val.num_worker_per_gpu")


class Experiment:
    def __init__(self, root, name, writer=True):
        from colora.options import check_name

        check_name(name, "name")
        self.dir = Path(root) / name
        self.models, self.states, self.logs = self.dir / "models", self.dir / "training_states", self.dir / "logs"
        self.writer = writer  # only rank 0 writes
        self._log_handler = None

    def archive_existing(self):
        """Before a fresh run: rename a folder holding an earlier run to `<name>_archived_<time>`, so
        its states cannot outrank, be pruned with, or be resumed instead of the new run's."""
        if not self.writer or not self.dir.is_dir() or not any(self.dir.iterdir()):
            return None
        target = self.dir.with_name(f"{self.dir.name}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
        n = 1
        while target.exists():
            target, n = target.with_name(f"{target.name.rsplit('~', 1)[0]}~{n}"), n + 1
        try:
            self.dir.rename(target)
        except OSError as exc:
            raise ColoraError(f"'{self.dir}' holds an earlier run and cannot be moved aside ({exc.strerror or exc}); "
                              "rerun with --auto_resume to continue it, or choose another name") from None
        log.warning(f"'{self.dir}' held an earlier run: moved it to '{target}' (--auto_resume continues a run)")
        return target

    def create(self):
        """Make the folders, failing early (before training) if they cannot be written."""
        if not self.writer:
            return self
        try:
            for d in (self.models, self.states, self.logs):
                d.mkdir(parents=True, exist_ok=True)
                remove_stale_temps(d)
            probe = self.logs / ".write_test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ColoraError(f"cannot write the experiment folder '{self.dir}': {exc.strerror or exc}; "
                              "choose another path.experiments_root") from None
        handler = logging.FileHandler(self.logs / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logging.getLogger("colora").addHandler(handler)
        self._log_handler = handler
        return self

    def close(self):
        if self._log_handler is not None:
            logging.getLogger("colora").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # ---- logs ----------------------------------------------------------------------------------
    def save_options(self, text):
        if self.writer:
            atomic_write_text(self.logs / "options.yml", text)

    def append_metrics(self, record):
        """One JSON line per event (appended; a line is written whole or not at all)."""
        if self.writer:
            try:
                with open(self.logs / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise ColoraError(f"cannot write '{self.logs / 'metrics.jsonl'}': {exc.strerror or exc}; "
                                  "free some space and rerun with --auto_resume") from None

    def read_metrics(self):
        path = self.logs / "metrics.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill; the state on disk is older anyway
        return out

    def truncate_metrics(self, after_iter):
        """On resume, drop records logged after the state we resume from (they will be redone)."""
        if not self.writer:
            return
        kept = [r for r in self.read_metrics() if r.get("iter", 0) <= after_iter]
        atomic_write_text(self.logs / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))

    def plot_curves(self):
        """logs/curves.png: training loss and validation PSNR (when matplotlib is installed)."""
        if not self.writer:
            return None
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        try:
            return self._plot(plt)
        except OSError as exc:  # a full disk at the end must not hide why the run ended
            log.warning(f"cannot write {self.logs / 'curves.png'}: {exc.strerror or exc}")
            return None

    def _plot(self, plt):
        records = self.read_metrics()
        train = [(r["iter"], r["loss"]) for r in records if r.get("kind") == "train"]
        val = [(r["iter"], r["psnr"]) for r in records if r.get("kind") == "val" and "psnr" in r]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        if train:
            axes[0].plot(*zip(*train), lw=1)
        axes[0].set(title="training loss", xlabel="iteration")
        if val:
            axes[1].plot(*zip(*val), marker="o")
        axes[1].set(title="validation PSNR (dB)", xlabel="iteration")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(self.logs / "curves.png", buf.getvalue())
        return self.logs / "curves.png"

    # ---- training states -----------------------------------------------------------------------
    def save_state(self, iteration, state, keep):
        """training_states/<iter>.state, then prune to the newest `keep`."""
        if not self.writer:
            return None
        buf = io.BytesIO()
        torch.save(state, buf)
        path = self.states / f"{iteration}.state"
        atomic_write_bytes(path, buf.getvalue())
        self.prune(self.states, r"(\d+)\.state", keep)
        return path

    def latest_state(self):
        states = self.states_newest_first()
        return states[0] if states else None

    def states_newest_first(self):
        return [p for _, p in sorted(self._numbered(self.states, r"(\d+)\.state"), reverse=True)]

    def prune(self, folder, pattern, keep):
        for _, path in sorted(self._numbered(folder, pattern))[:-keep or None] if keep > 0 else []:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    @staticmethod
    def _numbered(folder, pattern):
        if not folder.is_dir():
            return []
        return [(int(m.group(1)), p) for p in folder.iterdir() if (m := re.fullmatch(pattern, p.name))]


def load_state(path):
    path = Path(path)
    if not path.is_file():
        raise ColoraError(f"resume state '{path}' not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ColoraError(f"cannot read resume state '{path}': {reason}") from None
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        raise ColoraError(f"cannot read resume state '{path}': it is not a colora training state")
    return state


def flat_options(tree, prefix=""):
    """{'train.optim_g.lr': 0.001, ...}: the options as dotted keys (recorded in each state)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat_options(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def defaults_of_added(recorded, current):
    """{dotted key: its default} for the options of `current` that `recorded` lacks: options colora
    gained after the state was saved. A run resumed after an upgrade has them at their defaults,
    which change nothing, so a resume must not call them changed."""
    from colora.options import load_options

    added = [k for k in current if k not in recorded]
    if not added:
        return {}
    tree = {}
    for key, value in current.items():
        if key not in added:
            *parents, leaf = key.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    try:
        defaults = flat_options(load_options(tree).to_dict())
    except ColoraError:
        return {}
    return {k: defaults[k] for k in added if k in defaults}


def options_diff(recorded, current):
    """The options that differ between a state and this run, except those a resume may change
    (and options added to colora since, left at their defaults)."""
    def free(key):
        return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_CHANGES)

    then = {**defaults_of_added(recorded, current), **recorded}
    keys = sorted(k for k in set(then) | set(current) if not free(k) and then.get(k) != current.get(k))
    return [f"{k}: {recorded.get(k)!r} then, {current.get(k)!r} now" for k in keys]


def rng_states():
    """Every RNG the loop touches, as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "gauss": float(np_state[4])}}


def set_rng_states(states):
    torch.set_rng_state(states["torch"])
    random.setstate(_tuplify(states["python"]))
    n = states["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start
