"""`datasets.<phase>.type` -> dataset class, for both families: the synthetic and paired-folder
datasets (colora.data.datasets) and the real benchmarks read from their downloads
(colora.data.real, which build on PairedFolderDataset). A module above both, so that neither
has to import the other to know every type.
"""
import difflib

from colora.data.datasets import PairedFolderDataset, ProdDataset, TaskDataset
from colora.data.real import BENCHMARKS
from colora.degradations.base import MIN_SIZE
from colora.errors import OptionsError
from colora.options import DatasetOpt, load_section

DATASETS = {"ProdDataset": ProdDataset, "TaskDataset": TaskDataset, "PairedFolderDataset": PairedFolderDataset,
            "PairedImageDataset": PairedFolderDataset,  # BasicSR's name for paired folders
            **BENCHMARKS}


def build_dataset(dataset_opt, degradations_opt=None, phase="train"):
    """The dataset a `datasets.<phase>` section describes (DatasetOpt or dict); `degradations_opt`
    (the `degradations` section) configures ProdDataset."""
    if phase not in ("train", "val"):
        raise ValueError(f"phase must be 'train' or 'val', got {phase!r}")
    where = f"datasets.{phase}"
    opt = load_section(DatasetOpt, dataset_opt, where)
    if opt.type not in DATASETS:
        close = difflib.get_close_matches(str(opt.type), list(DATASETS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; choose one of: {', '.join(DATASETS)}"
        raise OptionsError(f"{where}.type '{opt.type}' is not a dataset{hint}")
    if opt.gt_size < MIN_SIZE:
        raise OptionsError(f"{where}.gt_size must be at least {MIN_SIZE}, got {opt.gt_size}")
    for name in ("num_pairs", "num_samples", "crop_pairs_size"):
        if getattr(opt, name) is not None and getattr(opt, name) < 1:
            raise OptionsError(f"{where}.{name} must be at least 1, got {getattr(opt, name)}")
    if "{}" not in opt.filename_tmpl:
        raise OptionsError(f"{where}.filename_tmpl must contain '{{}}' (where the GT name goes), got {opt.filename_tmpl!r}")
    if opt.dead_leaves < 0:
        raise OptionsError(f"{where}.dead_leaves must be 0 (none) or more, got {opt.dead_leaves}")
    if opt.dead_leaves and opt.type not in ("ProdDataset", "TaskDataset"):
        raise OptionsError(f"{where}.dead_leaves adds clean images to a synthetic dataset (ProdDataset or "
                           f"TaskDataset), not to {opt.type}; remove it")
    return DATASETS[opt.type](opt, degradations_opt, phase)
