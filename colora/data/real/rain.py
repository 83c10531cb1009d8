"""RainDS (Quan et al., "Removing raindrops and rain streaks in one go", CVPR 2021), as downloaded.

Both halves keep one clean `gt/` folder per split beside three degraded ones, `rainstreak/`,
`raindrop/` and `rainstreak_raindrop/` (the subsets; CoLoRA's Rain, Raindrop and Rain & Raindrop
tasks). RainDS_real (photographed, 1296x728) names all four alike, `<id>.png`; RainDS_syn (rendered
on street scenes) prefixes them: gt `norain-<id>`, rainstreak `rain-<id>`, raindrop `rd-<id>`,
both `rd-rain-<id>`, each also with a `pie-` prefix for its second scene collection. The split
folders are `train_set` / `test_set` in RainDS_real and `train` / `test` (or the `_set` names) in
RainDS_syn. An upstream leftover outside the naming (a non-numeric name in RainDS_real) is left
out with a warning. A `gt/` image without one subset's partner is fine: the subsets are unequal.
"""
import re

from colora.data.imagefolder import pair_folders
from colora.data.real.base import Benchmark
from colora.data.real.protocols import Protocol

SPLIT_DIRS = {"train": ("train_set", "train"), "test": ("test_set", "test")}
SYN_PREFIX = {"rainstreak": "rain-", "raindrop": "rd-", "rainstreak_raindrop": "rd-rain-"}
# Deraining papers (Restormer, MPRNet, the RainDS authors' CCN) report PSNR/SSIM on the Y channel.
DERAIN = Protocol(y_channel=True, source="deraining convention (Rain100, RainDS: Y channel, no crop)")


class _RainDS(Benchmark):
    SUBSETS = ("rainstreak", "raindrop", "rainstreak_raindrop")
    PROTOCOL = DERAIN

    def split_dir(self, d):
        """The split folder of a RainDS half at `d` with gt/ and the subset, or None."""
        for name in SPLIT_DIRS[self.split]:
            if (d / name / "gt").is_dir() and (d / name / self.subset).is_dir():
                return d / name
        return None

    def scan(self):
        half = self.locate(lambda d: (d == self.root or d.name.lower() == self.NAME.lower()) and self.split_dir(d),
                           f"{self.NAME}/{'|'.join(SPLIT_DIRS[self.split])}/ with gt/ and {self.subset}/")
        split = self.split_dir(half)
        return pair_folders(split / self.subset, split / "gt", lq_key=self.lq_key, every_gt=False,
                            stray=self.stray)


class RainDSReal(_RainDS):
    NAME = "RainDS_real"
    LAYOUT = "RainDS_real/{train_set,test_set}/{gt,rainstreak,raindrop,rainstreak_raindrop}/<id>.png"

    @staticmethod
    def lq_key(gt):
        return gt if gt.isdigit() else None

    @staticmethod
    def stray(lq):
        return not lq.isdigit()


class RainDSSyn(_RainDS):
    NAME = "RainDS_syn"
    LAYOUT = ("RainDS_syn/{train,test}/ with gt/norain-<id>.png, rainstreak/rain-<id>.png, raindrop/rd-<id>.png, "
              "rainstreak_raindrop/rd-rain-<id>.png (and pie- variants)")

    def lq_key(self, gt):
        m = re.fullmatch(r"(pie-)?norain-(.+)", gt)
        return f"{m[1] or ''}{SYN_PREFIX[self.subset]}{m[2]}" if m else None

    def stray(self, lq):
        return re.fullmatch(rf"(pie-)?{SYN_PREFIX[self.subset]}[^.]+", lq) is None
