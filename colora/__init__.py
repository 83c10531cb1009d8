"""colora: PROD pre-training and contribution-based LoRA for image restoration.

The public Python API. Submodules are imported lazily so that `import colora` stays fast and one
broken optional dependency cannot break everything (unlike BasicSR's eager `__init__`).
"""
__version__ = "0.1.0"

_API = {
    "ColoraError": "colora.errors",
    "load_options": "colora.options",
    "build_arch": "colora.archs",
    "list_archs": "colora.archs",
    "load_checkpoint": "colora.checkpoint",
    "save_checkpoint": "colora.checkpoint",
    "load_state_dict": "colora.checkpoint",
    "read_image": "colora.imageio",
    "write_image": "colora.imageio",
    "calculate_psnr": "colora.metrics",
    "calculate_ssim": "colora.metrics",
    "Restorer": "colora.inference.restorer",
    "pretrain": "colora.training.trainer",
    "finetune": "colora.tuning.finetune",
    "build_dataset": "colora.data.build",
    "load_preset": "colora.presets",
    "list_presets": "colora.presets",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'colora' has no attribute {name!r}")
