"""The fine-tuning tasks as degradation sequences, and exact replay of recorded recipes.

CoLoRA fine-tunes on six real tasks (plus low light here); for synthetic pairs each task maps to
the ops that mimic it. A recipe is a JSON-friendly list of {"op": name, "params": {...}}; because
every op's `apply` is a pure function of (image, params), `replay` reproduces the degraded image
byte for byte, also after a JSON round trip.
"""
import numpy as np

from colora.degradations.base import get_op
from colora.errors import OptionsError

TASKS = {
    "rain": ("rain",),
    "raindrop": ("raindrop",),
    "rain_raindrop": ("rain", "raindrop"),
    "noise": ("camera_noise",),  # SIDD-like real sensor noise
    "blur": ("motion_blur",),  # RealBlur / GoPro-like camera shake
    "haze": ("haze",),
    "lowlight": ("lowlight",),
}


def degrade_task(img, task, rng):
    """Degrade `img` for `task` with params drawn from `rng` (a Generator or a seed).
    Returns (degraded image, recipe)."""
    if task not in TASKS:
        raise OptionsError(f"unknown task '{task}'; valid tasks: {', '.join(TASKS)}")
    rng = np.random.default_rng(rng)
    recipe = []
    for name in TASKS[task]:
        img, params = get_op(name)(img, rng)
        recipe.append({"op": name, "params": params})
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
