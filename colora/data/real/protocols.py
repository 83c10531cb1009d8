"""How the papers on each benchmark compute PSNR/SSIM, so `colora eval --dataset` numbers can be
put beside theirs: RGB or BT.601 Y, a border crop, and for RealBlur its own alignment.

RealBlur's GT was shot through a second lens, so a perfect restoration is still a few pixels and a
little brightness off; its authors' evaluation (rimchang/RealBlur, evaluation_RealBlur_ecc.py)
first scales the output's intensity to the GT by least squares, then warps it onto the GT with the
homography cv2.findTransformECC finds on grey images (100 iterations, Gaussian 5), and scores only
the pixels the warp covers: PSNR from the masked squared error, SSIM (Gaussian window sigma 1.5,
population covariance) averaged over the mask without its 5-px rim. The degraded input is scored
unaligned, as there. Restormer, NAFNet and the deblurring papers since report RealBlur this way.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from colora.metrics import calculate_psnr, calculate_ssim


@dataclass(frozen=True)
class Protocol:
    """RGB or Y, a border crop, and (RealBlur) alignment before masked metrics; `source` says
    whose protocol it is, for the README table and `colora eval`."""

    y_channel: bool = False
    crop_border: int = 0
    align: bool = False
    source: str = ""

    def describe(self):
        how = "Y (BT.601)" if self.y_channel else "RGB"
        crop = f", crop {self.crop_border}" if self.crop_border else ""
        return how + crop + (", ECC homography alignment + masked metrics" if self.align else "")

    def score(self, img, gt, restored=True):
        """(PSNR, SSIM) of float RGB `img` in [0, 1] against `gt`."""
        if self.align and restored:
            return aligned_scores(img, gt)
        kw = {"crop_border": self.crop_border, "test_y_channel": self.y_channel and gt.shape[-1] == 3}
        return calculate_psnr(img, gt, **kw), calculate_ssim(img, gt, **kw)


def ecc_align(img, gt):
    """`img` intensity-matched and warped onto `gt`; returns (img, gt, mask), both masked."""
    img, gt = np.asarray(img, np.float32), np.asarray(gt, np.float32)
    scaled = img * (float(np.sum(gt * img)) / max(float(np.sum(img * img)), 1e-12))
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    try:
        _, warp = cv2.findTransformECC(cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY), cv2.cvtColor(scaled, cv2.COLOR_RGB2GRAY),
                                       warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:  # ECC did not converge (flat image): score it as it is
        warp = np.eye(3, dtype=np.float32)
    h, w = gt.shape[:2]
    inverse = cv2.WARP_INVERSE_MAP
    moved = cv2.warpPerspective(scaled, warp, (w, h), flags=cv2.INTER_CUBIC + inverse, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpPerspective(np.ones_like(scaled), warp, (w, h), flags=cv2.INTER_NEAREST + inverse,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved * mask, gt * mask, mask


def aligned_scores(img, gt):
    """RealBlur's PSNR and SSIM of `img` against `gt` after `ecc_align`."""
    from skimage.metrics import structural_similarity

    moved, ref, mask = ecc_align(img, gt)
    err = float(np.sum((ref.astype(np.float64) - moved) ** 2) / max(float(mask.sum()), 1.0))
    psnr = float("inf") if err == 0 else float(10 * np.log10(1.0 / err))
    _, ssim_map = structural_similarity(ref, moved, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1.0, full=True)
    pad = 5  # the rim of the 11-px window
    inner, weight = (ssim_map * mask)[pad:-pad, pad:-pad], mask[pad:-pad, pad:-pad]
    ssim = float(np.mean(inner.sum(axis=(0, 1)) / np.maximum(weight.sum(axis=(0, 1)), 1.0)))
    return psnr, ssim
