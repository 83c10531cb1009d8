"""JPEG compression artefacts (8×8 blocking, ringing, chroma bleeding).

The image is rounded to uint8 (as a saved photo would be), converted RGB -> BGR for OpenCV,
encoded and decoded with `cv2.imencode` / `cv2.imdecode` (libjpeg, 4:2:0 chroma subsampling) and
converted back to float RGB. Deterministic: no seed needed.
"""
import cv2
import numpy as np

from colora.degradations.base import DegradationOp, register_op
from colora.errors import OptionsError


def jpeg_roundtrip(img, quality):
    """Encode float RGB [0, 1] as JPEG at `quality` (0–100) and decode it back to float RGB."""
    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OptionsError(f"OpenCV could not JPEG-encode an image of shape {img.shape} at quality {quality}")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(255.0)


@register_op
class Jpeg(DegradationOp):
    """JPEG compression at an integer `quality`. quality 30–95: Real-ESRGAN (also BSRGAN)."""

    name = "jpeg"
    ranges = {"quality": (30, 95)}
    integer = ("quality",)
    limits = {"quality": (1, 100)}

    def _apply(self, img, params):
        return jpeg_roundtrip(img, params["quality"])
