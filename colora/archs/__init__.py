"""Architectures: the registry (`network_g.type` -> class), the contract each one declares
(colora.archs.contract: parts, padding, options from a state dict, inference and export forms),
NAFNet and Restormer, and their published configurations.

The architecture modules are imported here once so the registry is complete; they only depend on
torch.
"""
from typing import Any, Optional

from colora.archs.contract import PART_NAMES, Architecture  # noqa: F401  (public here)
from colora.archs.registry import (arch_params, build_arch, check_arch_options, full_config,  # noqa: F401
                                   get_arch, infer_network_g, list_archs, register_arch)
from colora.archs import nafnet, restormer  # noqa: F401  (fills the registry)
from colora.archs.onednn import use_onednn  # noqa: F401  (public here)

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


def official_name(opt: Any) -> Optional[str]:
    """The published configuration `opt` equals (compared in its training form, so NAFNetLocal
    with any TLC window is NAFNet), or None."""
    mine = full_config(opt)
    mine = full_config(get_arch(mine["type"]).training_form(mine))
    for name, cfg in OFFICIAL_CONFIGS.items():
        if full_config(cfg) == mine:
            return name
    return None
