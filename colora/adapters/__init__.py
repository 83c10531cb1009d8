"""Parameter-efficient adapters on one frozen base: attach, train, save, load, merge and swap.

    from colora.adapters import attach_adapter, save_adapter, load_adapter, set_adapter
    attach_adapter(model, {"method": "lora", "rank": 8}, name="rain")
    ...train colora.adapters.trainable_parameters(model)...
    save_adapter(model, "adapters/rain")
    load_adapter(other_model, "adapters/rain"); set_adapter(other_model, "rain"); merge_adapter(other_model)

Methods: colora, lora, svdiff, difffit, sct, bitfit, decoder, full (see each module).
"""
import dataclasses

from colora import __version__
from colora.adapters import delta, difffit, lora, sct, svdiff  # noqa: F401  (fill the registries)
from colora.adapters.base import METHODS, AdapterHub, base_state_dict, count_base
from colora.adapters.files import read_adapter_dir, write_adapter_dir
from colora.errors import AdapterError

__all__ = ["attach_adapter", "save_adapter", "load_adapter", "set_adapter", "set_strength",
           "merge_adapter", "unmerge_adapter", "remove_adapter", "trainable_parameters",
           "count_trainable", "adapter_state_dict", "base_state_dict", "base_sha256", "get_hub",
           "list_adapters", "METHODS"]


def get_hub(model, create=False):
    hub = getattr(model, "colora_adapters", None)
    if hub is None and create:
        hub = AdapterHub(model)
        model.colora_adapters = hub  # registered as a submodule: .to(), DDP and .train() reach it
    if hub is None:
        raise AdapterError("this model has no adapter attached")
    return hub


def _settings(config, overrides):
    from colora.options import AdapterOpt, load_options

    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    raw.update(overrides)
    opt = load_options({"adapter": raw}).adapter  # the same strict checks as the YAML section
    if opt.method not in METHODS:
        raise AdapterError(f"unknown adapter method '{opt.method}'; choose one of: {', '.join(sorted(METHODS))}")
    return dataclasses.asdict(opt) if isinstance(opt, AdapterOpt) else opt


def attach_adapter(model, config=None, name=None, calib=None, **overrides):
    """Attach a new adapter (frozen base, identity at init) and make it active; returns its name.

    `config` is an `AdapterOpt`, a dict of the `adapter:` YAML section, or None (+ keyword
    overrides). `calib` is an iterable of input batches (needed by `sct`)."""
    cfg = _settings(config, overrides)
    fresh = getattr(model, "colora_adapters", None) is None
    grads = {p: p.requires_grad for p in model.parameters()} if fresh else None
    hub = get_hub(model, create=True)
    name = name or cfg["name"] or cfg["task"] or cfg["method"]
    record = {"method": cfg["method"], "name": name, "task": cfg["task"], "version": __version__,
              "settings": {k: v for k, v in cfg.items() if k not in ("method", "name", "task")},
              "base_arch": getattr(model, "network_g", None)}
    previous = hub.active
    hub.activate(None)
    try:
        layers = METHODS[cfg["method"]](model, cfg, calib)
        if not layers:
            raise AdapterError(f"adapter method '{cfg['method']}' selected no layer of this model; check 'target'")
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


def set_adapter(model, name):
    """Switch the active adapter (None = plain base). Unmerged: O(1); merged: re-merges in place."""
    get_hub(model).activate(name)


def set_strength(model, strength):
    get_hub(model).set_strength(strength)


def merge_adapter(model):
    get_hub(model).merge()


def unmerge_adapter(model):
    get_hub(model).unmerge()


def remove_adapter(model, name):
    get_hub(model).remove(name)


def list_adapters(model):
    hub = getattr(model, "colora_adapters", None)
    return list(hub.adapters) if hub is not None else []


def trainable_parameters(model, name=None):
    return get_hub(model).trainable_parameters(name)


def count_trainable(model, name=None):
    """(trainable parameters of the adapter, the same as a percentage of the base)."""
    n = sum(p.numel() for p in trainable_parameters(model, name) if p.is_floating_point())
    return n, 100.0 * n / max(1, count_base(model))


def adapter_state_dict(model, name=None):
    hub = get_hub(model)
    return hub.state_dict_of(name or hub.active)


def base_sha256(model):
    from colora.checkpoint import state_dict_sha256

    hub = getattr(model, "colora_adapters", None)
    if hub is not None and hub._base_sha256 is not None:
        return hub._base_sha256
    digest = state_dict_sha256(base_state_dict(model))
    if hub is not None:
        hub._base_sha256 = digest  # the base is frozen while a hub exists
    return digest


def save_adapter(model, directory, name=None, info=None):
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


def load_adapter(model, directory, name=None, force=False, activate=True):
    """Load an adapter directory onto `model`; refuses another base unless `force`."""
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
