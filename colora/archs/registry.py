"""Architecture registry: `network_g.type` -> class (after timm's register/create pattern).

Each architecture module decorates its class with `@register_arch`; `build_arch(opt)` builds one
from the `network_g` options (a dict or the options dataclass). A module of its own so that the
architectures can register themselves without importing the package that imports them.
"""
import difflib
import inspect
import math

from colora.errors import OptionsError

_REGISTRY = {}


def register_arch(cls):
    """Class decorator: make `cls` buildable as `network_g: {type: cls.__name__}`."""
    _REGISTRY[cls.__name__] = cls
    return cls


def list_archs():
    return sorted(_REGISTRY)


def get_arch(name):
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(list_archs())}"
        raise OptionsError(f"unknown network_g.type '{name}'{hint}")
    return _REGISTRY[name]


def arch_params(name):
    """The keyword options an architecture accepts, with their defaults."""
    sig = inspect.signature(get_arch(name).__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}


def check_arch_options(name, params, where="network_g"):
    """Each option in the architecture's LIMITS (for lists: their items, and 1 to 8 of them), so an
    absurd size fails in one line before a byte is allocated."""
    limits = getattr(get_arch(name), "LIMITS", {})
    for key, value in params.items():
        if key not in limits or value is None:
            continue
        lo, hi = limits[key]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not 1 <= len(items) <= 8:
            raise OptionsError(f"{where}.{key} must list 1 to 8 values, got {len(items)}")
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise OptionsError(f"{where}.{key} must be between {lo} and {hi}, got {value!r}")


def build_arch(opt, **overrides):
    """Build a network from `{'type': 'NAFNet', **kwargs}` (dict or NetworkOpt)."""
    opt = dict(opt.to_dict() if hasattr(opt, "to_dict") else opt)
    opt.update(overrides)
    name = opt.pop("type", None)
    if name is None:
        raise OptionsError("network_g has no 'type'; set it to one of: " + ", ".join(list_archs()))
    cls = get_arch(name)
    valid = arch_params(name)
    for key in opt:
        if key not in valid:
            close = difflib.get_close_matches(key, list(valid), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise OptionsError(f"unknown key '{key}' in network_g ({name}){hint}")
    check_arch_options(name, opt)
    model = cls(**opt)
    model.network_g = full_config({"type": name, **opt})  # recorded by checkpoints and adapters
    return model


def full_config(opt):
    """`network_g` with every default filled in (to compare configurations)."""
    opt = dict(opt.to_dict() if hasattr(opt, "to_dict") else opt)
    name = opt.get("type", "NAFNet")
    full = {"type": name, **arch_params(name)}
    full.update(opt)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}
