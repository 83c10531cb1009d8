"""Resolution loss: resize down, then back up to the original size.

Real-ESRGAN resizes by a factor 0.15–1.5 and keeps the new size (it trains super-resolution);
restoration needs the output size to match the input, so this op goes down by `scale` and back
up, each step with its own interpolation (area / bilinear / bicubic, drawn uniformly, as
Real-ESRGAN does). Bicubic overshoot is clipped to [0, 1].
"""
import cv2

from colora.degradations.base import DegradationOp, register_op
from colora.errors import OptionsError

INTERPOLATIONS = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@register_op
class Resize(DegradationOp):
    """Down-up resize by `scale` with interpolations `down` and `up` (names in INTERPOLATIONS).
    scale 0.15–1.0: our choice (Real-ESRGAN's 0.15–1.5, without the size-changing upscale)."""

    name = "resize"
    ranges = {"scale": (0.15, 1.0)}
    limits = {"scale": (0.01, 1.0)}
    interpolations = tuple(INTERPOLATIONS)

    def sample(self, rng):
        params = super().sample(rng)
        params["down"] = str(rng.choice(self.interpolations))
        params["up"] = str(rng.choice(self.interpolations))
        return params

    def _apply(self, img, params):
        for key in ("down", "up"):
            if params[key] not in INTERPOLATIONS:
                raise OptionsError(f"resize.{key} must be one of {', '.join(INTERPOLATIONS)}, got {params[key]!r}")
        h, w = img.shape[:2]
        small = (max(1, round(w * params["scale"])), max(1, round(h * params["scale"])))
        down = cv2.resize(img, small, interpolation=INTERPOLATIONS[params["down"]])
        return cv2.resize(down, (w, h), interpolation=INTERPOLATIONS[params["up"]])
