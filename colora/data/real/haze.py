"""The NTIRE real-haze sets, as downloaded: CoLoRA's Haze task.

Each pair is a number with a hazy and a haze-free shot, told apart by a suffix:
- NH-HAZE (NTIRE 2020, non-homogeneous haze): 55 pairs `<NN>_hazy.png` / `<NN>_GT.png` side by
  side in one folder (NH-HAZE.zip; NH-HAZE 2 of NTIRE 2021 names its pairs alike).
- Dense-HAZE (NTIRE 2019): 55 pairs, `hazy/<NN>_hazy.png` and `GT/<NN>_GT.png` (Dense_Haze_NTIRE19/).
- O-HAZE (NTIRE 2018, outdoor): 45 pairs, `hazy/<NN>_outdoor_hazy.jpg` and `GT/<NN>_outdoor_GT.jpg`
  (O-HAZE/# O-HAZY NTIRE 2018/).
The splits are the challenges' own: NH-HAZE and Dense-HAZE 1-45 train, 46-50 val, 51-55 test;
O-HAZE 1-35 train, 36-40 val, 41-45 test; `trainval` joins the first two (what most dehazing papers
train on before testing on the last five), `all` takes every pair.
"""
import re

from colora.data.real.base import Benchmark
from colora.data.real.protocols import Protocol
from colora.imageio import image_files

DEHAZE = Protocol(source="NTIRE dehazing challenges and the papers on them: RGB, full image, no crop")


class _Haze(Benchmark):
    SPLITS = ("train", "val", "test", "trainval", "all")
    DEFAULT_SPLIT = {"train": "trainval", "val": "test"}
    PROTOCOL = DEHAZE
    HAZY = "hazy"  # the suffix after the number: <NN>_<HAZY> / <NN>_<CLEAR>
    CLEAR = "GT"
    RANGES = {"train": (1, 45), "val": (46, 50), "test": (51, 55)}

    def numbers(self):
        if self.split == "all":
            return None
        parts = {"trainval": ("train", "val")}.get(self.split, (self.split,))
        return {n for p in parts for n in range(self.RANGES[p][0], self.RANGES[p][1] + 1)}

    def scan(self):
        pattern = re.compile(rf"(\d+)_{self.HAZY}\.\w+", re.IGNORECASE)
        folder = self.locate(lambda d: any(pattern.fullmatch(p.name) for p in image_files(d, recursive=False)),
                             f"<NN>_{self.HAZY} images")
        # the GT lies beside the hazy images, or else in a sibling folder (GT/)
        def clear_in(dirs):
            return {p.stem.lower(): p for d in dirs for p in image_files(d, recursive=False)
                    if re.fullmatch(rf"\d+_{self.CLEAR}", p.stem, re.IGNORECASE)}

        clear = clear_in([folder]) or clear_in(d for d in sorted(folder.parent.iterdir()) if d.is_dir())
        wanted, lq, gt, problems = self.numbers(), {}, {}, []
        for path in image_files(folder, recursive=False):
            m = pattern.fullmatch(path.name)
            if not m or (wanted is not None and int(m[1]) not in wanted):
                continue
            partner = clear.get(f"{m[1]}_{self.CLEAR}".lower())
            if partner is None:
                problems.append(f"no {m[1]}_{self.CLEAR} image for {path.name} in '{folder}' or beside it")
                continue
            lq[m[1]], gt[m[1]] = path, partner
        return lq, gt, problems


class NHHaze(_Haze):
    NAME = "NH-HAZE"
    LAYOUT = "NH-HAZE/<NN>_hazy.png beside <NN>_GT.png (01-55)"


class DenseHaze(_Haze):
    NAME = "Dense-HAZE"
    LAYOUT = "Dense_Haze_NTIRE19/{hazy/<NN>_hazy.png,GT/<NN>_GT.png} (01-55)"


class OHaze(_Haze):
    NAME = "O-HAZE"
    LAYOUT = "O-HAZE/# O-HAZY NTIRE 2018/{hazy/<NN>_outdoor_hazy.jpg,GT/<NN>_outdoor_GT.jpg} (01-45)"
    HAZY, CLEAR = "outdoor_hazy", "outdoor_GT"
    RANGES = {"train": (1, 35), "val": (36, 40), "test": (41, 45)}
