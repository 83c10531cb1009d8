"""Geometric self-ensemble: the mean of the network's outputs over the eight flips and rotations of
its input, each undone (Timofte, Rothe, Van Gool, CVPR 2016, "Seven ways to improve example-based
single image super resolution"; EDSR's "+" results, Lim et al. 2017). A restoration network is not
exactly equivariant to these transforms, so its errors differ between them and partly average
out; the price is eight forwards per tile (`colora restore --tta`, `Restorer(..., tta=True)`).
"""
import torch

TRANSFORMS = tuple((k, flip) for k in range(4) for flip in (False, True))  # the dihedral group of the square


def self_ensemble(run, x: torch.Tensor) -> torch.Tensor:
    """Mean of `run` over the eight transforms of x (N, C, H, W): rotate by k quarter turns, flip
    the width if `flip`; each output is transformed back before it is summed (in float32)."""
    total = None
    for k, flip in TRANSFORMS:
        t = torch.rot90(x, k, (2, 3))
        y = run((t.flip(3) if flip else t).contiguous())
        y = torch.rot90(y.flip(3) if flip else y, -k, (2, 3)).float()
        total = y if total is None else total.add_(y)
    return total.div_(len(TRANSFORMS))
