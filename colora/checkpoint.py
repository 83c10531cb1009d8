"""Network checkpoints: safetensors for ours, BasicSR `.pth` read without unpickling objects.

A colora checkpoint is one safetensors file: the weights under their module names and, when the
run kept an EMA, the EMA weights under `params_ema.<name>` (BasicSR keeps the two as `params` /
`params_ema` in a pickle). The header metadata records the `network_g` options so `colora info`
and `restore` can rebuild the architecture without a YAML file.
"""
import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from colora.archs import build_arch, full_config, get_arch, infer_network_g, list_archs
from colora.errors import CheckpointError, OptionsError
from colora.fileio import atomic_path

EMA_PREFIX = "params_ema."


def save_checkpoint(path, state_dict, params_ema=None, network_g=None, extra_metadata=None):
    """Write weights (+ EMA weights) to `path` atomically; `network_g` goes in the header."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    if params_ema is not None:
        tensors.update({EMA_PREFIX + k: v.detach().contiguous().cpu() for k, v in params_ema.items()})
    meta = {"format": "colora"}
    if network_g is not None:
        meta["network_g"] = json.dumps(network_g.to_dict() if hasattr(network_g, "to_dict") else network_g)
    meta.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_metadata(path):
    """The safetensors header metadata of a checkpoint ({} for .pth files)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or n > 100_000_000:
                raise ValueError
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"cannot read checkpoint '{path}': not a valid safetensors file") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(header, dict) or not isinstance(meta or {}, dict) \
            or not all(isinstance(v, str) for v in (meta or {}).values()):
        raise CheckpointError(f"cannot read checkpoint '{path}': its header metadata is not a mapping of strings")
    return meta or {}


def checkpoint_network_g(path, state, meta):
    """The `network_g` a checkpoint's header records (or, without one, what its tensors imply),
    checked before anything is built: values of the right types and domains, in agreement with the
    tensors' own counts and shapes, so a tampered header costs an error line, not gigabytes."""
    from colora.options import network_options

    inferred = infer_network_g(state)
    if "train_size" in meta:
        train_size_of(path, meta)  # a bad value is a bad header, whoever reads it
    if "network_g" not in meta:
        if inferred is None:
            raise CheckpointError(f"'{path}' is not a checkpoint of a known architecture ({', '.join(list_archs())}); "
                                  "cannot tell which network it holds")
        return inferred
    bad = f"checkpoint '{path}' has a bad network_g in its header"
    try:
        recorded = json.loads(meta["network_g"])
    except ValueError:
        raise CheckpointError(f"{bad}: it is not JSON") from None
    if not isinstance(recorded, dict):
        raise CheckpointError(f"{bad}: a {type(recorded).__name__}, not a mapping such as {{type: NAFNet, width: 32}}")
    try:
        network_g = network_options(recorded, "network_g").to_dict()
    except OptionsError as exc:  # a type or a domain
        raise CheckpointError(f"{bad}: {exc}") from None
    if inferred is not None and inferred["type"] == network_g["type"]:
        canonical = get_arch(network_g["type"]).canonical_options
        mine, theirs = canonical(full_config(network_g)), canonical(full_config(inferred))
        for key in inferred:
            if mine.get(key) != theirs.get(key):
                raise CheckpointError(f"{bad}: it says {key}={mine.get(key)!r} but the tensors hold "
                                      f"{key}={theirs.get(key)!r}; the header was edited or belongs to another file")
    with torch.device("meta"):  # shapes only: no memory spent on a model that may not fit
        check_fits(build_arch(network_g), state, path)
    return network_g


def train_size_of(path, meta, default=256):
    """The training patch side recorded in a checkpoint's header (NAFNet's TLC window)."""
    try:
        size = int(meta.get("train_size", default))
    except ValueError:
        size = 0
    if not 8 <= size <= 1 << 16:
        raise CheckpointError(f"checkpoint '{path}' has a bad train_size in its header: "
                              f"{meta.get('train_size')!r} (a side between 8 and 65536 pixels)")
    return size


def load_state_dict(path, param_key=None):
    """Read the weights of a checkpoint as a plain {name: tensor} dict on the CPU.

    `param_key` picks `params` or `params_ema`; None takes the EMA weights when present (as
    Real-ESRGAN's inference does), else the plain ones. A `module.` prefix (DataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint '{path}': the file is empty")
    if path.suffix == ".safetensors":
        try:
            raw = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read checkpoint '{path}': {exc}") from None
        ema = {k[len(EMA_PREFIX):]: v for k, v in raw.items() if k.startswith(EMA_PREFIX)}
        groups = {"params": {k: v for k, v in raw.items() if not k.startswith(EMA_PREFIX)}}
        if ema:
            groups["params_ema"] = ema
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"cannot read checkpoint '{path}': {reason[:200]}") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"checkpoint '{path}' holds a {type(raw).__name__}, not a state dict")
        groups = {k: raw[k] for k in ("params", "params_ema") if isinstance(raw.get(k), dict)}
        if not groups:
            groups = {"params": raw}
    if param_key is None:
        param_key = "params_ema" if "params_ema" in groups else "params"
    if param_key not in groups:
        raise CheckpointError(f"checkpoint '{path}' has no '{param_key}' weights; it has: {', '.join(groups)}")
    state = groups[param_key]
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint '{path}' is not a state dict: entry '{bad[0]}' is not a tensor")
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


def weight_groups(path):
    """Which of `params` / `params_ema` a checkpoint holds (`colora info`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            ema = any(k.startswith(EMA_PREFIX) for k in fh.keys())
        return ["params", "params_ema"] if ema else ["params"]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    found = [k for k in ("params", "params_ema") if isinstance(raw, dict) and isinstance(raw.get(k), dict)]
    return found or ["params"]


def load_checkpoint(model, path, strict=True, param_key=None):
    """Load a checkpoint into `model`; a mismatch is a CheckpointError listing what differs."""
    state = load_state_dict(path, param_key)
    check_fits(model, state, path, strict)
    model.load_state_dict(state, strict=strict)
    return model


def check_fits(model, state, path, strict=True):
    """Raise a CheckpointError naming missing/unexpected/mis-shaped keys and what would fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if not shapes and (not strict or not (missing or unexpected)):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {label} keys: {', '.join(keys[:3])}{more}")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches, e.g. {k}: checkpoint {list(state[k].shape)} "
                     f"vs model {list(own[k].shape)}")
    guess = infer_network_g(state)
    hint = f"; it fits network_g {json.dumps(guess)}" if guess else ""
    raise CheckpointError(f"checkpoint '{path}' does not fit {type(model).__name__}: "
                          f"{'; '.join(parts)}{hint}")


def state_dict_sha256(state):
    """A hash of weights (names, dtypes, shapes and bytes): adapters record their base's hash."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
