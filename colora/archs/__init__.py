"""Architectures: NAFNet and Restormer, registered by `network_g.type` (see `registry.py`).

Importing this package imports every architecture module once, so the registry is complete; they
only depend on torch. `build_arch(opt)` builds one from the `network_g` options.
"""
from colora.archs.registry import (arch_params, build_arch, check_arch_options, full_config, get_arch,  # noqa: F401
                                   list_archs, register_arch)
from colora.archs import nafnet, restormer  # noqa: F401  (fills the registry)

# The published configurations (their checkpoints load strictly into these).
OFFICIAL_CONFIGS = {
    "NAFNet-SIDD-width32": {"type": "NAFNet", "width": 32, "middle_blk_num": 12,
                            "enc_blk_nums": [2, 2, 4, 8], "dec_blk_nums": [2, 2, 2, 2]},
    "NAFNet-SIDD-width64": {"type": "NAFNet", "width": 64, "middle_blk_num": 12,
                            "enc_blk_nums": [2, 2, 4, 8], "dec_blk_nums": [2, 2, 2, 2]},
    "NAFNet-GoPro-width32": {"type": "NAFNet", "width": 32, "middle_blk_num": 1,
                             "enc_blk_nums": [1, 1, 1, 28], "dec_blk_nums": [1, 1, 1, 1]},
    "NAFNet-GoPro-width64": {"type": "NAFNet", "width": 64, "middle_blk_num": 1,
                             "enc_blk_nums": [1, 1, 1, 28], "dec_blk_nums": [1, 1, 1, 1]},
    "Restormer": {"type": "Restormer", "LayerNorm_type": "WithBias"},
    "Restormer-RealDenoising": {"type": "Restormer", "LayerNorm_type": "BiasFree"},
}


def official_name(opt):
    """The published configuration `opt` equals, or None."""
    mine = full_config(opt)
    mine.pop("train_size", None), mine.pop("base_size", None)
    if mine["type"] == "NAFNetLocal":
        mine["type"] = "NAFNet"
    for name, cfg in OFFICIAL_CONFIGS.items():
        if full_config(cfg) == mine:
            return name
    return None
