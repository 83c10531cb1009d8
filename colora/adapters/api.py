"""The public adapter functions: attach, train, save, load, merge and swap adapters on one model.

They hold no state of their own: everything lives in the model's `AdapterHub` (colora.adapters.hub),
registered as `model.colora_adapters`, so an adapter travels with the model (`.to()`, DDP, deepcopy).
"""
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from colora import __version__
from colora.adapters.config import AdapterOpt
from colora.adapters.files import read_adapter_dir, write_adapter_dir
from colora.adapters.hub import AdapterHub, base_state_dict, count_base
from colora.adapters.registry import get_method, load_all
from colora.errors import AdapterError

METHODS = load_all()  # name -> Method class; importing every method module registers every tuner kind


AdapterConfig = Union[AdapterOpt, Mapping[str, object], None]


def get_hub(model: nn.Module, create: bool = False) -> AdapterHub:
    """The model's adapter hub (`create`: make one, freezing the base, if there is none)."""
    hub = getattr(model, "colora_adapters", None)
    if hub is None and create:
        hub = AdapterHub(model)
        model.colora_adapters = hub  # registered as a submodule: .to(), DDP and .train() reach it
    if hub is None:
        raise AdapterError("this model has no adapter attached")
    return hub


def adapter_options(config: AdapterConfig = None, **overrides) -> AdapterOpt:
    """`config` as a checked `AdapterOpt`. A typed one is used as it is; a mapping (the `adapter:`
    YAML section, flat keys) or keyword overrides go through the same strict checks as the YAML."""
    if isinstance(config, AdapterOpt) and not overrides:
        return config
    from colora.options import load_options

    raw = config.to_dict() if isinstance(config, AdapterOpt) else dict(config or {})
    return load_options({"adapter": {**raw, **overrides}}).adapter


def attach_adapter(model: nn.Module, config: AdapterConfig = None, name: Optional[str] = None,
                   calib: Optional[Iterable[torch.Tensor]] = None, ranks: Optional[Mapping[str, int]] = None,
                   **overrides) -> str:
    """Attach a new adapter (frozen base, identity at init) and make it active; returns its name.

    `config` is an `AdapterOpt`, a mapping of the `adapter:` YAML section, or None (+ keyword
    overrides). `calib` is an iterable of input batches (SCT picks its channels on them). `ranks`
    gives LoRA/CoLoRA ranks per layer, {layer path: rank}, over `rank` and `rank_pattern`: what
    CoLoRA's allocation hands over (paths, so nothing is turned into patterns and parsed back)."""
    opt = adapter_options(config, **overrides)
    method = get_method(opt.method)
    if ranks is not None and not method.ranked:
        raise AdapterError(f"adapter method '{opt.method}' has no LoRA ranks, so it takes no per-layer ranks")
    fresh = getattr(model, "colora_adapters", None) is None
    grads = {p: p.requires_grad for p in model.parameters()} if fresh else None
    hub = get_hub(model, create=True)
    name = name or opt.name or opt.task or opt.method
    settings = {k: v for k, v in opt.to_dict().items() if k not in ("method", "name", "task")}
    record = {"method": opt.method, "name": name, "task": opt.task, "version": __version__,
              "settings": settings, "base_arch": getattr(model, "network_g", None)}
    previous = hub.active
    hub.activate(None)
    try:
        layers = method.layers(model, opt.settings, calib=calib, ranks=ranks)
        if not layers:
            raise AdapterError(f"adapter method '{opt.method}' selected no layer of this model; check 'target'")
        hub.add(name, layers, model, record)  # may refuse the name: the previous adapter stays active
    except Exception:
        hub.activate(previous)
        if fresh:  # leave the model as it was: no empty hub, base not frozen
            del model.colora_adapters
            for p, flag in grads.items():
                p.requires_grad_(flag)
        raise
    hub.activate(name)
    return name


def set_adapter(model: nn.Module, name: Optional[str]) -> None:
    """Switch the active adapter (None = plain base). Unmerged: O(1), the hooks read the active
    one; merged: re-merges the touched tensors in place, so a swap needs no second model."""
    get_hub(model).activate(name)


def blend_adapters(model: nn.Module, weights: Mapping[str, float]) -> None:
    """Run a weighted sum of several adapters' deltas merged into the base (merged mode; peft's
    "linear" weighted merge): {"rain": 0.7, "haze": 1.0}. The next set_adapter undoes it."""
    get_hub(model).blend(weights)


def set_strength(model: nn.Module, strength: float) -> None:
    """Blend base and adapter, effective = base + strength * delta (Real-ESRGAN's -dn idea)."""
    get_hub(model).set_strength(strength)


def merge_adapter(model: nn.Module) -> None:
    """Fold the active adapter into the tensors (inference: no per-forward delta); exact to undo."""
    get_hub(model).merge()


def keep_merged_copies(model: nn.Module, keep: bool = True) -> None:
    """Merged mode: keep each adapter's merged tensors once made, so swapping back to it re-points
    them instead of rewriting them (a swap ~0.1 ms instead of ~30 ms on NAFNet-w32), at the cost of
    the tensors each adapter touches (up to the base's size per adapter). False frees them."""
    get_hub(model).keep_merged(keep)


def unmerge_adapter(model: nn.Module) -> None:
    """Put the very base tensors back (training needs unmerged mode)."""
    get_hub(model).unmerge()


def remove_adapter(model: nn.Module, name: str) -> None:
    get_hub(model).remove(name)


def list_adapters(model: nn.Module) -> List[str]:
    hub = getattr(model, "colora_adapters", None)
    return list(hub.adapters) if hub is not None else []


def trainable_parameters(model: nn.Module, name: Optional[str] = None) -> List[nn.Parameter]:
    """The adapter's tensors (default: the active one's), what the optimizer trains."""
    return get_hub(model).trainable_parameters(name)


def count_trainable(model: nn.Module, name: Optional[str] = None) -> Tuple[int, float]:
    """(trainable parameters of the adapter, the same as a percentage of the base)."""
    n = sum(p.numel() for p in trainable_parameters(model, name) if p.is_floating_point())
    return n, 100.0 * n / max(1, count_base(model))


def adapter_state_dict(model: nn.Module, name: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The adapter's tensors under the file's peft-style keys (`<module path>.lora_A.weight`, ...)."""
    hub = get_hub(model)
    return hub.state_dict_of(name or hub.active)


def base_sha256(model: nn.Module) -> str:
    """The sha256 of the base weights, recorded in every adapter file: an adapter corrects one
    specific set of weights, so loading it onto another base is refused."""
    from colora.checkpoint import state_dict_sha256

    hub = getattr(model, "colora_adapters", None)
    if hub is not None and hub.base_sha256 is not None:
        return hub.base_sha256
    digest = state_dict_sha256(base_state_dict(model))
    if hub is not None:
        hub.base_sha256 = digest  # the base is frozen while a hub exists
    return digest


def save_adapter(model: nn.Module, directory: Union[str, Path], name: Optional[str] = None,
                 info: Optional[Mapping[str, object]] = None) -> Path:
    """Write the adapter directory (config, weights, card) atomically; returns its path.

    `info` adds fields to the config/card, e.g. {"data": "...", "training": {...}}."""
    hub = get_hub(model)
    name = name or hub.active
    if name not in hub.adapters:
        raise AdapterError(f"no adapter named '{name}' is attached")
    n, pct = count_trainable(model, name)
    config = dict(hub.configs[name], base_sha256=base_sha256(model), strength=hub.strength,
                  trainable_params=n, base_params=count_base(model), trainable_percent=round(pct, 4),
                  **(info or {}))
    hub.configs[name] = {k: v for k, v in config.items() if k not in ("strength",)}
    return write_adapter_dir(directory, config, hub.state_dict_of(name))


def load_adapter(model: nn.Module, directory: Union[str, Path], name: Optional[str] = None, force: bool = False,
                 activate: bool = True) -> str:
    """Load an adapter directory onto `model`; returns its name. Refuses another architecture, and
    another base (by sha256) unless `force`; the tensors are checked against the config's layers
    before anything is copied."""
    config, tensors = read_adapter_dir(directory)
    arch, mine = config.get("base_arch"), getattr(model, "network_g", None)
    if arch and mine and arch != mine:
        raise AdapterError(f"adapter '{directory}' was made for {arch.get('type')} {_diff(arch, mine)}; "
                           "this model differs, so it cannot be loaded")
    if not force and config.get("base_sha256") and config["base_sha256"] != base_sha256(model):
        raise AdapterError(f"adapter '{directory}' was trained on another base (sha256 "
                           f"{config['base_sha256'][:12]}…, this model {base_sha256(model)[:12]}…); load the base "
                           "it was made for, or pass --force (force=True in Python) to apply it anyway")
    hub = get_hub(model, create=True)
    name = name or config.get("name") or config["method"]
    previous = hub.active
    record = {k: v for k, v in config.items() if k not in ("layers",)}
    hub.activate(None)  # tuners read their owners' tensors (SVDiff's SVD): show them the base, not a merge
    try:
        hub.add(name, config["layers"], model, record)
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        hub.activate(previous)
        raise AdapterError(f"adapter '{directory}' does not fit this model: {exc}") from None
    except AdapterError:
        hub.activate(previous)
        raise
    try:
        hub.load_state_of(name, tensors, directory)
    except AdapterError:
        hub.remove(name)
        hub.activate(previous)
        raise
    hub.activate(name if activate else previous)
    if "strength" in config and activate:
        hub.set_strength(config["strength"])
    return name


def _diff(arch, mine):
    diffs = [f"{k}={arch.get(k)!r} (model: {mine.get(k)!r})" for k in sorted(set(arch) | set(mine))
             if arch.get(k) != mine.get(k)]
    return "with " + ", ".join(diffs[:3])
