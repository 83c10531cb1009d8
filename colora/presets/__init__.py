"""The shipped option presets, addressable by name so that an installed wheel, not only a clone of
the repository, can run them: `colora pretrain --preset nafnet_tiny_prod`, `colora finetune --preset
noise` (`-opt FILE` still takes any YAML file).

A preset is `<kind>/<name>.yml` beside this file; the paper-scale runs are `paper/<name>`
(pre-training: `paper/<name>.yml`, fine-tuning: `paper/finetune/<name>.yml`).
"""
from pathlib import Path

from colora.errors import OptionsError

ROOT = Path(__file__).resolve().parent
_FOLDERS = {"pretrain": ("pretrain", "paper"), "finetune": ("finetune", "paper/finetune")}


def list_presets(kind):
    """Names `--preset` accepts for `kind` ("pretrain" or "finetune"), sorted."""
    own, paper = (ROOT / folder for folder in _FOLDERS[kind])
    return sorted(p.stem for p in own.glob("*.yml")) + sorted(f"paper/{p.stem}" for p in paper.glob("*.yml"))


def preset_path(kind, name):
    """The YAML file of preset `name`; a name that is not one says which names are."""
    if kind not in _FOLDERS:
        raise OptionsError(f"presets exist for {', '.join(_FOLDERS)}, not '{kind}'")
    own, paper = _FOLDERS[kind]
    folder, stem = (paper, name[len("paper/"):]) if name.startswith("paper/") else (own, name)
    path = ROOT / folder / f"{stem}.yml"
    if "/" in stem or "\\" in stem or not path.is_file():
        raise OptionsError(f"no {kind} preset named '{name}'; choose one of: {', '.join(list_presets(kind))}")
    return path


def load_preset(kind, name, overrides=()):
    """`load_options` of a preset by name (the Python twin of `--preset`)."""
    from colora.options import load_options

    return load_options(preset_path(kind, name), overrides)
