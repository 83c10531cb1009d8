"""PROD: degrade a clean image with a random subset of ops applied in a random order.

The paper (CoLoRA, Sec. 3.1 and its PROD figure) pre-trains one backbone on clean photos degraded
by "randomly selected synthetic degradation functions" composed in random orders, so that it
learns many degradations and their mixtures; it compares against two ablations, a *fixed* order
and a *single* op per sample. The subset size, repetition and per-op weights are not published,
so they are options (the `degradations:` section, `DegradationsOpt`):

    mode          prod: k ~ U{1..k_max} ops, drawn by weight without repeats, in a uniformly
                  random order; fixed: the same draw, applied in the canonical order (the order
                  of `ops`, or of DEFAULT_POOL); single: exactly one op per sample
    k_max         largest subset (>= 1); without repeats it is capped at the pool's size
    allow_repeat  draw with replacement (the same op may occur twice, with its own params)
    ops           op name -> {prob: relative weight in [0, 1] (default 1; 0 disables the op),
                  plus range overrides such as sigma: [0.5, 2]}; empty = DEFAULT_POOL
    exclude       op or task names (a task stands for the ops that define it, `tasks.task_ops`)
                  that are never drawn, e.g. a held-out fine-tuning task
    p_clean       probability in [0, 1] that a sample is left clean: lq == gt and the recipe is
                  empty, so the network also learns to leave a clean photo alone (default 0:
                  never; then no random number is drawn for it and older runs stay identical)

Weighted draws without repeats pick ops one at a time in proportion to the remaining weights,
so heavier ops also tend to be drawn first; the order is therefore shuffled separately.
Every sample returns its recipe (list of {"op", "params"}), which `tasks.replay` reproduces.
"""
import difflib
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from colora.degradations.base import OPS, get_op
from colora.degradations.tasks import TASKS, replay, task_ops
from colora.errors import OptionsError
from colora.sections import Section

# The default pool, in its canonical (fixed-mode) order: the order light meets them on its way
# to a saved photo -- the scene (haze), the weather and the glass in front of the lens (rain,
# raindrops), the optics and the shaking camera (blur), the sensor (resize then noise, as in
# Real-ESRGAN's blur -> resize -> noise -> JPEG), and compression last. Weights: Real-ESRGAN's
# four Gaussian-family kernels share one "Gaussian blur" slot, so blur is not drawn four times as
# often as rain. `lowlight` is left out (add it under `ops` to use it): it is a global exposure
# change rather than a local corruption, it turns the other ops' output nearly black, and it
# stays a task the pre-trained backbone has never seen. Shot noise has two renderers
# (Real-ESRGAN's Poisson and the display-space Poisson-Gaussian) sharing one slot.
DEFAULT_POOL = {
    "haze": 1.0, "rain": 1.0, "raindrop": 1.0,
    "defocus_blur": 1.0, "gaussian_blur": 0.25, "aniso_gaussian_blur": 0.25,
    "generalized_gaussian_blur": 0.25, "plateau_blur": 0.25, "motion_blur": 1.0,
    "resize": 1.0, "camera_noise": 1.0, "poisson_noise": 0.5, "poisson_gaussian_noise": 0.5,
    "gaussian_noise": 1.0,
    "jpeg": 1.0,
}
MODES = ("prod", "fixed", "single")


def expand_exclude(names, where="degradations"):
    """Op names from a list of op and task names (a task name stands for all its ops)."""
    out = set()
    for name in names:
        if name in TASKS or name in OPS:
            out.update(task_ops(name) if name in TASKS else (name,))
            continue
        close = difflib.get_close_matches(str(name), sorted(set(OPS) | set(TASKS)), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; tasks: {', '.join(TASKS)}"
        raise OptionsError(f"{where}.exclude: '{name}' is neither a degradation nor a task{hint}")
    return out


class ProdSampler:
    """Draws and applies PROD recipes; built from the `degradations` section (a DegradationsOpt of
    colora.options, or any object with its fields: this package does not import the options).

    All validation happens here (and so at `load_options` time, through DegradationsOpt.validate)."""

    def __init__(self, opt, where="degradations"):
        if opt.mode not in MODES:
            raise OptionsError(f"{where}.mode is '{opt.mode}'; choose one of: {', '.join(MODES)}")
        if isinstance(opt.k_max, bool) or not isinstance(opt.k_max, numbers.Integral) or opt.k_max < 1:
            raise OptionsError(f"{where}.k_max must be an integer of at least 1, got {opt.k_max!r}")
        self.mode, self.k_max, self.allow_repeat = opt.mode, int(opt.k_max), bool(opt.allow_repeat)
        p_clean = opt.p_clean
        if isinstance(p_clean, bool) or not isinstance(p_clean, numbers.Real) or not 0.0 <= p_clean <= 1.0:
            raise OptionsError(f"{where}.p_clean must be a probability in [0, 1], got {p_clean!r}")
        self.p_clean = float(p_clean)
        excluded = expand_exclude(opt.exclude, where)
        spec = opt.ops or {name: {"prob": w} for name, w in DEFAULT_POOL.items()}
        self.names, self.ops, weights = [], [], []
        for name, cfg in spec.items():
            op, prob = self._build_op(name, cfg, f"{where}.ops.{name}")
            if name in excluded or prob == 0:
                continue
            self.names.append(name)
            self.ops.append(op)
            weights.append(prob)
        if not self.ops:
            raise OptionsError(f"{where}: no degradation left to draw (every op is excluded or has "
                               f"prob 0); pool: {', '.join(spec)}; excluded: {', '.join(sorted(excluded)) or '-'}")
        self.p = np.asarray(weights, np.float64) / sum(weights)
        self.k_hi = self.k_max if self.allow_repeat else min(self.k_max, len(self.ops))

    @staticmethod
    def _build_op(name, cfg, where):
        cfg = {} if cfg is None else cfg
        if not isinstance(cfg, dict):
            raise OptionsError(f"{where} must be a mapping such as {{prob: 0.5, sigma: [1, 10]}}, got {cfg!r}")
        cfg = dict(cfg)
        prob = cfg.pop("prob", 1.0)
        if isinstance(prob, str):  # YAML reads 1e-1 (no dot) as a string
            try:
                prob = float(prob)
            except ValueError:
                pass
        if isinstance(prob, bool) or not isinstance(prob, numbers.Real) or not 0.0 <= prob <= 1.0:
            raise OptionsError(f"{where}.prob must be a number in [0, 1] (a relative weight), got {prob!r}")
        try:
            op = get_op(name, **cfg)
        except OptionsError as err:
            raise OptionsError(f"{where.rsplit('.', 1)[0]}: {err}") from None
        return op, float(prob)

    def draw(self, rng):
        """Indices into `self.ops`, in the order they are to be applied."""
        k = 1 if self.mode == "single" else int(rng.integers(1, self.k_hi + 1))
        chosen = rng.choice(len(self.ops), size=k, replace=self.allow_repeat, p=self.p)
        if self.mode == "fixed":
            return [int(i) for i in np.sort(chosen, kind="stable")]
        return [int(i) for i in rng.permutation(chosen)]

    def degrade(self, img, rng):
        """Degrade `img` (float32 H×W×3 in [0, 1]) with a freshly drawn recipe.

        `rng`: a numpy Generator or a seed. Returns (degraded image, recipe)."""
        rng = np.random.default_rng(rng)
        if self.p_clean > 0 and rng.random() < self.p_clean:
            return replay(img, []), []
        out, recipe = img, []
        for i in self.draw(rng):
            out, params = self.ops[i](out, rng)
            recipe.append({"op": self.names[i], "params": params})
        return out, recipe

    __call__ = degrade

    def __repr__(self):
        pool = ", ".join(f"{n}:{p:.3g}" for n, p in zip(self.names, self.p))
        return (f"ProdSampler(mode={self.mode}, k_max={self.k_max}, allow_repeat={self.allow_repeat}, "
                f"p_clean={self.p_clean:g}, pool=[{pool}])")


@dataclass
class DegradationsOpt(Section):
    """PROD (paper Sec. 3.1): how many ops per sample, which, and in what order."""

    mode: str = "prod"  # prod: random subset, random order; fixed: fixed order; single: one op
    k_max: int = 3
    allow_repeat: bool = False
    ops: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)  # op -> {prob, ranges} or ~
    exclude: List[str] = field(default_factory=list)  # ops or tasks held out (e.g. a fine-tuning task)
    p_clean: float = 0.0  # probability a sample is left clean (lq == gt, empty recipe); 0 = never
    CHOICES = {"mode": ("prod", "fixed", "single")}

    def validate(self, where):
        """Build the sampler once, so a bad op name, range or prob fails when the YAML loads."""
        super().validate(where)
        ProdSampler(self, where)
