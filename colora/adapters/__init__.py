"""Parameter-efficient adapters on one frozen base: attach, train, save, load, merge and swap.

    from colora.adapters import attach_adapter, save_adapter, load_adapter, set_adapter
    attach_adapter(model, {"method": "lora", "rank": 8}, name="rain")
    ...train colora.adapters.trainable_parameters(model)...
    save_adapter(model, "adapters/rain")
    load_adapter(other_model, "adapters/haze"); set_adapter(other_model, "haze"); merge_adapter(other_model)

The methods are those of `METHOD_NAMES` (colora.adapters.registry), one module each. The names below
are imported on first use, so reading the method table or the `adapter:` options section
(colora.adapters.config) costs no torch import.

- registry.py  the method table, `register_method`, `get_method`
- config.py    `AdapterOpt`: the method's settings, the budget and FAIG, as typed sections
- base.py      `Tuner` and `Method`, the targeting helpers (layers, parts, extras)
- hub.py       `AdapterHub`: the tuners' deltas installed unmerged or merged, swapped in place
- api.py       the functions below; files.py the adapter folder (peft's layout)
- lora.py, svdiff.py, difffit.py, sct.py, delta.py: the methods
"""
import importlib

_API = {name: "colora.adapters.api" for name in (
    "attach_adapter", "save_adapter", "load_adapter", "set_adapter", "blend_adapters", "set_strength", "merge_adapter",
    "unmerge_adapter", "keep_merged_copies", "remove_adapter", "trainable_parameters", "count_trainable",
    "adapter_state_dict",
    "base_sha256", "get_hub", "list_adapters", "adapter_options")}
_API.update({"base_state_dict": "colora.adapters.hub", "AdapterOpt": "colora.adapters.config",
             "MethodOpt": "colora.adapters.config", "METHOD_NAMES": "colora.adapters.registry",
             "get_method": "colora.adapters.registry", "METHODS": "colora.adapters.api"})

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'colora.adapters' has no attribute {name!r}")
