"""LOL (Wei et al., "Deep Retinex decomposition", BMVC 2018), as downloaded: low-light pairs.

LOLdataset/our485/{low,high}/<n>.png are the 485 training pairs and LOLdataset/eval15/{low,high}/
the 15 test pairs, 600x400, one name in both folders. Not one of the paper's six tasks: it is here
for colora's lowlight degradation, whose adapter can be checked on real low-light photos.
"""
from colora.data.imagefolder import pair_folders
from colora.data.real.base import Benchmark
from colora.data.real.protocols import Protocol

SPLIT_DIRS = {"train": "our485", "test": "eval15"}


class LOL(Benchmark):
    NAME = "LOL"
    LAYOUT = "LOLdataset/{our485,eval15}/{low,high}/<n>.png"
    PROTOCOL = Protocol(source="low-light enhancement papers on LOL (RetinexNet, Retinexformer): RGB, no crop")

    def scan(self):
        name = SPLIT_DIRS[self.split]
        split = self.locate(lambda d: d.name == name and (d / "low").is_dir() and (d / "high").is_dir(),
                            f"{name}/ with low/ and high/")
        return pair_folders(split / "low", split / "high")
