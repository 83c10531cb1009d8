"""SIDD (Abdelhamed et al., CVPR 2018), sRGB, as downloaded: CoLoRA's Noise task.

train: SIDD_Medium_Srgb/Data/<scene-instance>/ holds two shots per scene (`NOISY_SRGB_010.PNG`,
`NOISY_SRGB_011.PNG`) each beside its ground truth (`GT_SRGB_010.PNG`, ...): 160 scenes, 320
pairs of up to 5328x3000 px (NAFNet and Restormer cut them into 512-px crops before training; here
the crops are taken on the fly, and `num_pairs` picks whole shots).
val: ValidationNoisyBlocksSrgb.mat beside ValidationGtBlocksSrgb.mat, 40 images x 32 blocks of
256x256 (uint8 arrays of shape 40x32x256x256x3 under the same keys), the blocks every SIDD paper
reports. The Benchmark blocks (BenchmarkNoisyBlocksSrgb.mat) have no public GT: they are scored
by the SIDD server, so they are not a split here.
"""
import re

import numpy as np

from colora.data.real.base import Benchmark
from colora.data.real.protocols import Protocol
from colora.errors import ColoraError
from colora.imageio import image_files

VAL_FILES = ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb")


class Blocks:
    """uint8 blocks (N, H, W, 3) served as float32 RGB images, converted one at a time."""

    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return self.blocks[i].astype(np.float32) / 255.0


def read_blocks(path, key):
    """The block array `key` of a SIDD .mat file (scipy.io.loadmat), as (images*blocks, H, W, 3)."""
    from scipy.io import loadmat

    try:
        arr = loadmat(str(path))[key]
    except (OSError, ValueError, KeyError) as e:
        raise ColoraError(f"'{path}' is not a SIDD block file holding '{key}' ({e})") from None
    if arr.ndim != 5 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ColoraError(f"'{path}' holds '{key}' of shape {arr.shape} ({arr.dtype}); SIDD blocks are "
                          "uint8 images x blocks x H x W x 3")
    return arr


class SIDD(Benchmark):
    NAME = "SIDD"
    LAYOUT = ("SIDD_Medium_Srgb/Data/<scene>/NOISY_SRGB_<n>.PNG beside GT_SRGB_<n>.PNG (train); "
              "ValidationNoisyBlocksSrgb.mat beside ValidationGtBlocksSrgb.mat (val)")
    SPLITS = ("train", "val")
    DEFAULT_SPLIT = {"train": "train", "val": "val"}
    PROTOCOL = Protocol(source="SIDD validation blocks, RGB, no crop (NAFNet, Restormer, MPRNet)")

    def __init__(self, opt, degradations_opt=None, phase="train"):
        if opt.split == "benchmark":
            raise ColoraError("the SIDD Benchmark blocks have no public ground truth (the SIDD server scores "
                              "them); use split val, the Validation blocks")
        super().__init__(opt, degradations_opt, phase)

    def list_pairs(self):
        if self.split == "val":
            return {}, {}, []
        return super().list_pairs()

    def load_pairs(self, lq, gt, problems):
        if self.split != "val":
            return super().load_pairs(lq, gt, problems)
        folder = self.locate(lambda d: all((d / f"{k}.mat").is_file() for k in VAL_FILES),
                             " and ".join(f"{k}.mat" for k in VAL_FILES))
        noisy, clean = (read_blocks(folder / f"{k}.mat", k) for k in VAL_FILES)
        if noisy.shape != clean.shape:
            self.mismatch(f"the noisy blocks are {noisy.shape} and the GT blocks {clean.shape}")
        n, b = noisy.shape[:2]
        keys = self.sample([f"{i:02d}_{j:02d}" for i in range(n) for j in range(b)])
        index = [int(k[:2]) * b + int(k[3:]) for k in keys]
        if self.phase == "train" and self.size > min(noisy.shape[2:4]):
            raise ColoraError(f"gt_size {self.size} is larger than the {noisy.shape[2]}-px SIDD blocks; lower it")
        noisy, clean = (a.reshape(-1, *a.shape[2:])[index] for a in (noisy, clean))
        self.keys, self.lq, self.gt = keys, Blocks(noisy), Blocks(clean)

    def scan(self):
        data = self.locate(lambda d: d.name == "Data" and any(d.glob("*/NOISY_SRGB_*")), "Data/<scene>/NOISY_SRGB_*")
        lq, gt, problems = {}, {}, []
        for scene in sorted(p for p in data.iterdir() if p.is_dir()):
            files = {p.name.upper(): p for p in image_files(scene, recursive=False)}
            for name, path in files.items():
                m = re.fullmatch(r"(NOISY|GT)_SRGB_(\w+)\.PNG", name)
                if m and m[1] == "NOISY":
                    partner = files.get(f"GT_SRGB_{m[2]}.PNG")
                    if partner is None:
                        problems.append(f"no GT_SRGB_{m[2]}.PNG beside {path.name} in '{scene}'")
                        continue
                    key = f"{scene.name}_{m[2]}"
                    lq[key], gt[key] = path, partner
                elif m and f"NOISY_SRGB_{m[2]}.PNG" not in files:
                    problems.append(f"no NOISY_SRGB_{m[2]}.PNG beside {path.name} in '{scene}'")
        return lq, gt, problems
