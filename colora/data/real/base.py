"""What every benchmark loader shares: split and subset choice, finding the layout inside the
folder a user extracted, and one clear error when it is not there.

A benchmark is a PairedFolderDataset whose pairs come from the dataset's own layout instead of two
folders matched by name, so sampling (`num_pairs` with `seed`), decoding once, crops, flips and the
one-error-for-all-problems rule are the same for every dataset. Downloads nest differently (an
archive's folder inside a folder of the same name, `RainDS/RainDS_real`, `# O-HAZY NTIRE 2018`),
so each loader looks for its layout below `dataroot` (a few levels deep) rather than at it.
"""
from pathlib import Path

from colora.data.datasets import PairedFolderDataset
from colora.data.real.protocols import Protocol
from colora.errors import ColoraError, OptionsError

SEARCH_DEPTH = 3  # how far below dataroot a layout is looked for


def find_dir(root, test, depth=SEARCH_DEPTH):
    """The first folder at or below `root` (breadth first, sorted, `depth` levels) for which
    `test(folder)` is true, or None."""
    level = [Path(root)]
    for _ in range(depth + 1):
        for d in level:
            if test(d):
                return d
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return None


def found(root, n=6):
    """A short list of what `root` holds, for a layout error."""
    root = Path(root)
    entries = sorted(root.iterdir()) if root.is_dir() else []
    names = [e.name + ("/" if e.is_dir() else "") for e in entries[:n]]
    return ", ".join(names) + (f", ... ({len(entries)} entries)" if len(entries) > n else "") or "nothing"


class Benchmark(PairedFolderDataset):
    """A benchmark read from its own directory layout at `dataroot`.

    Subclasses set NAME, LAYOUT (the expected tree in one line), SPLITS, DEFAULT_SPLIT (phase ->
    split), SUBSETS (first = default), PROTOCOL, and `scan() -> ({key: LQ}, {key: GT}, [problems])`."""

    NAME = ""
    LAYOUT = ""
    SPLITS = ("train", "test")
    DEFAULT_SPLIT = {"train": "train", "val": "test"}
    SUBSETS = ()
    PROTOCOL = Protocol()

    def __init__(self, opt, degradations_opt=None, phase="train"):
        where = f"datasets.{phase}"
        self.split = opt.split or self.DEFAULT_SPLIT[phase]
        if self.split not in self.SPLITS:
            raise OptionsError(f"{where}.split '{self.split}' is not a split of {self.NAME}; "
                               f"choose one of: {', '.join(self.SPLITS)}")
        self.subset = opt.subset or (self.SUBSETS[0] if self.SUBSETS else None)
        if opt.subset and opt.subset not in self.SUBSETS:
            choices = f"choose one of: {', '.join(self.SUBSETS)}" if self.SUBSETS else "it has none"
            raise OptionsError(f"{where}.subset '{opt.subset}' is not a subset of {self.NAME}; {choices}")
        if not opt.dataroot:
            raise OptionsError(f"{where}: {self.NAME} needs dataroot, the folder its download was extracted to")
        self.root = Path(opt.dataroot).expanduser()
        if not self.root.is_dir():
            raise ColoraError(f"{self.NAME} dataroot '{self.root}' "
                              f"{'is not a folder' if self.root.exists() else 'does not exist'}")
        super().__init__(opt, degradations_opt, phase)

    def label(self):
        subset = f" {self.subset}" if self.subset else ""
        return f"{self.NAME}{subset} {self.split}"

    def where(self):
        return f"{self.label()} at '{self.root}' (expected {self.LAYOUT})"

    def mismatch(self, what):
        """The one error for a folder that does not hold the layout: expected vs found."""
        raise ColoraError(f"'{self.root}' does not hold {self.label()}: expected {self.LAYOUT}, "
                          f"but {what} (it holds: {found(self.root)})")

    def list_pairs(self):
        lq, gt, problems = self.scan()
        if not lq and not problems:
            self.mismatch(f"no {self.split} pairs were found")
        return lq, gt, problems

    def locate(self, test, what):
        """The folder below dataroot that `test` accepts, or the layout error naming `what`."""
        d = find_dir(self.root, test)
        if d is None:
            self.mismatch(f"no {what} was found within {SEARCH_DEPTH} levels")
        return d
