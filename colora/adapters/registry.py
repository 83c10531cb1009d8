"""The adapter methods colora knows: the one list of their names, and where each is implemented.

Every place that names the methods (the `adapter.method` choices, `colora compare --methods`,
the benchmarks) reads `METHOD_NAMES`. The table is plain data, so reading it costs no torch import:
loading options stays fast. Each method module registers its `Method` class under a name of the
table (`@register_method("lora")`); `get_method` imports that module on first use.
"""
import importlib
from typing import Dict, Tuple

from colora.errors import AdapterError

# name -> module implementing it; the order is the one methods are listed in (CoLoRA, the other
# parameter-efficient methods, then the baselines that train whole tensors).
_MODULES = {
    "colora": "colora.adapters.lora",
    "lora": "colora.adapters.lora",
    "svdiff": "colora.adapters.svdiff",
    "difffit": "colora.adapters.difffit",
    "sct": "colora.adapters.sct",
    "bitfit": "colora.adapters.delta",
    "decoder": "colora.adapters.delta",
    "full": "colora.adapters.delta",
}
METHOD_NAMES: Tuple[str, ...] = tuple(_MODULES)
METHODS: Dict[str, type] = {}  # name -> Method class, filled as the method modules are imported


def register_method(name: str):
    """Class decorator: `cls` implements the method `name` of the table above."""
    if name not in _MODULES:
        raise ValueError(f"method '{name}' is not in the table of colora/adapters/registry.py; add it there")

    def wrap(cls):
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def get_method(name: str):
    """The `Method` (colora.adapters.base) registered as `name`, a new instance, importing its module
    on first use."""
    if name not in _MODULES:
        raise AdapterError(f"unknown adapter method '{name}'; choose one of: {', '.join(METHOD_NAMES)}")
    if name not in METHODS:
        importlib.import_module(_MODULES[name])
    return METHODS[name]()


def load_all() -> Dict[str, type]:
    """Import every method module, so every tuner kind an adapter file may name is registered."""
    for module in dict.fromkeys(_MODULES.values()):
        importlib.import_module(module)
    return METHODS
