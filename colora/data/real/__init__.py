"""Real benchmark datasets read from their layouts as downloaded (`datasets.<phase>.type`).

Each loader is a PairedFolderDataset (colora.data.datasets) whose pairs come from its benchmark's own
directory layout and names, with `dataroot` at the extracted download, `split` and `subset`
options, the paper's `num_pairs` sampling with a fixed `seed`, and the PSNR/SSIM protocol the
papers on that benchmark use (`PROTOCOL`, which `colora eval --dataset` applies).
"""
from colora.data.real.blur import GoPro, RealBlurJ, RealBlurR
from colora.data.real.haze import DenseHaze, NHHaze, OHaze
from colora.data.real.lowlight import LOL
from colora.data.real.noise import SIDD
from colora.data.real.rain import RainDSReal, RainDSSyn

BENCHMARKS = {cls.NAME: cls for cls in (RainDSReal, RainDSSyn, SIDD, GoPro, RealBlurJ, RealBlurR,
                                        NHHaze, OHaze, DenseHaze, LOL)}


def find_benchmark(name):
    """The benchmark class named `name`, ignoring case, '-' and '_' (for the command line)."""
    def norm(s):
        return s.lower().replace("-", "").replace("_", "")

    for key, cls in BENCHMARKS.items():
        if norm(key) == norm(name):
            return cls
    return None
