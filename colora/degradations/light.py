"""Low light: an under-exposed, noisy photo (LOL-like), for the `lowlight` task.

out = exposure · img^gamma + N(0, noise²) per channel. gamma > 1 crushes shadows and mid-tones
more than highlights (as a dark scene through a camera's tone curve looks), `exposure` scales
everything down, and the small colour noise stands in for the read noise that dominates once
the signal is this weak.
"""
import numpy as np

from colora.degradations.base import DegradationOp, register_op


@register_op
class LowLight(DegradationOp):
    """Darkening with colour noise.
    exposure 0.1–0.5, gamma 1.5–3, noise std 0.002–0.02: our choice."""

    name = "lowlight"
    ranges = {"exposure": (0.1, 0.5), "gamma": (1.5, 3.0), "noise": (0.002, 0.02)}
    limits = {"exposure": (0.0, 1.0), "gamma": (0.01, None), "noise": (0.0, None)}
    uses_seed = True

    def _apply(self, img, params):
        rng = np.random.default_rng(params["seed"])
        dark = np.float32(params["exposure"]) * np.power(img, np.float32(params["gamma"]))
        return dark + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(params["noise"])
