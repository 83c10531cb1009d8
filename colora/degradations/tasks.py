"""The fine-tuning tasks as degradation sequences, and exact replay of recorded recipes.

CoLoRA fine-tunes on six real tasks (plus low light here); for synthetic pairs each task maps to
the ops that mimic it: a sequence of `Step`s, each drawing one op from a weighted choice (and
possibly skipped). A recipe is a JSON-friendly list of {"op": name, "params": {...}}; because
every op's `apply` is a pure function of (image, params), `replay` reproduces the degraded image
byte for byte, also after a JSON round trip.
"""
from dataclasses import dataclass, field

import numpy as np

from colora.degradations.base import get_op
from colora.errors import OptionsError


@dataclass(frozen=True)
class Step:
    """One step of a task: op name -> relative weight (one is drawn per sample), applied with
    probability `p` (1 = always), with optional per-op range overrides (op name -> {param: range}).
    `defining` = False marks an accessory (the mild noise after blur): it is not what the task
    is, so holding the task out of PROD (`task_ops`) does not hold it out."""

    ops: dict
    p: float = 1.0
    overrides: dict = field(default_factory=dict)
    defining: bool = True

    def draw(self, rng):
        """The op (built with its overrides) this sample uses, or None when the step is skipped."""
        if self.p < 1 and rng.random() >= self.p:
            return None
        names = list(self.ops)
        name = names[0]
        if len(names) > 1:
            weights = np.asarray([self.ops[n] for n in names], np.float64)
            name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        return name, get_op(name, **self.overrides.get(name, {}))


# Each task draws from the variety a real photo shows (see each op's docstring for its ranges):
# rain / raindrop / haze: the weather ops, which vary shape, depth, blend, refraction, airlight;
# noise: AWGN at sigma 5-50, signal-dependent (display-space Poisson-Gaussian) and camera noise
#   (linear-light Poisson-Gaussian), each grey, colour or channel-correlated where it applies;
# blur: every kernel family (Gaussian iso/aniso, generalized, plateau, defocus disc, motion
#   lines and random trajectories), then with p 0.5 mild sensor noise (sigma 0.5-4);
# rain_raindrop: streaks in the scene, then drops on the glass (the order light meets them).
NOISE = Step({"gaussian_noise": 0.4, "poisson_gaussian_noise": 0.3, "camera_noise": 0.3},
             overrides={"gaussian_noise": {"sigma": (5.0, 50.0)}})
BLUR = Step({"motion_blur": 0.35, "defocus_blur": 0.2, "gaussian_blur": 0.1, "aniso_gaussian_blur": 0.15,
             "generalized_gaussian_blur": 0.1, "plateau_blur": 0.1},
            overrides={name: {"sigma_x": (0.6, 3.0), "sigma_y": (0.3, 3.0)} for name in
                       ("aniso_gaussian_blur", "generalized_gaussian_blur", "plateau_blur")}
            | {"gaussian_blur": {"sigma": (0.6, 3.0)}})
MILD_NOISE = Step({"gaussian_noise": 1.0}, p=0.5, overrides={"gaussian_noise": {"sigma": (0.5, 4.0)}},
                  defining=False)
TASKS = {
    "rain": (Step({"rain": 1.0}),),
    "raindrop": (Step({"raindrop": 1.0}),),
    "rain_raindrop": (Step({"rain": 1.0}), Step({"raindrop": 1.0})),
    "noise": (NOISE,),  # SIDD-like sensor noise and synthetic AWGN benchmarks alike
    "blur": (BLUR, MILD_NOISE),  # RealBlur / GoPro-like shake, defocus and optical blur
    "haze": (Step({"haze": 1.0}),),
    "lowlight": (Step({"lowlight": 1.0}),),
}


# The six tasks CoLoRA fine-tunes (the paper's; lowlight is colora's extra): the shipped adapters,
# and what `task: all` (the one-adapter-for-everything baseline of issue 14) mixes.
RESTORATION_TASKS = ("rain", "raindrop", "rain_raindrop", "noise", "blur", "haze")


def task_ops(task, accessories=False):
    """The op names that define `task` (sorted), e.g. to hold a task out of PROD pre-training;
    with `accessories`, every op the task may draw."""
    return sorted({name for step in TASKS[task] if step.defining or accessories for name in step.ops})


def degrade_task(img, task, rng):
    """Degrade `img` for `task` with params drawn from `rng` (a Generator or a seed).
    Returns (degraded image, recipe); skipped steps leave no entry in the recipe."""
    if task not in TASKS:
        raise OptionsError(f"unknown task '{task}'; valid tasks: {', '.join(TASKS)}")
    rng = np.random.default_rng(rng)
    recipe = []
    for step in TASKS[task]:
        drawn = step.draw(rng)
        if drawn is None:
            continue
        name, op = drawn
        img, params = op(img, rng)
        recipe.append({"op": name, "params": params})
    if not recipe:  # every step skipped (cannot happen for the tasks above): still a new array
        img = replay(img, [])
    return img, recipe


def replay(img, recipe):
    """Re-apply a recorded recipe (list of {"op", "params"}) to `img`; byte-identical output."""
    if not isinstance(recipe, (list, tuple)):
        raise OptionsError(f"a recipe is a list of {{'op', 'params'}} steps, got {type(recipe).__name__}")
    out = img
    for i, step in enumerate(recipe):
        if not isinstance(step, dict) or set(step) != {"op", "params"}:
            raise OptionsError(f"recipe step {i} must be {{'op': name, 'params': {{...}}}}, got {step!r}")
        out = get_op(step["op"]).apply(out, step["params"])
    if out is img:  # an empty recipe still returns a new float32 array in [0, 1]
        out = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
    return out
