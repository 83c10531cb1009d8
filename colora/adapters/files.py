"""Adapter directories in peft's layout: adapter_config.json + adapter_model.safetensors + README.md.

The config records the method, every layer's tuner settings (ranks, SCT channels, ...), the base
architecture and the sha256 of the frozen base weights: loading onto another base is refused
(unless `force=True`), because an adapter is a correction of one specific set of weights.
"""
import json
from pathlib import Path
from typing import Dict, Mapping, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from colora import __version__
from colora.adapters.registry import METHOD_NAMES
from colora.errors import AdapterError
from colora.fileio import atomic_path, atomic_write_text

CONFIG, WEIGHTS, CARD = "adapter_config.json", "adapter_model.safetensors", "README.md"


def write_adapter_dir(directory: Union[str, Path], config: dict, tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write config, weights and card, each atomically (a crash never leaves half a file)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise AdapterError(f"cannot save the adapter: '{directory}' exists and is not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                      metadata={"format": "colora-adapter", "method": config["method"]})
        atomic_write_text(directory / CONFIG, json.dumps(config, indent=2) + "\n")
        atomic_write_text(directory / CARD, card(config))
    except OSError as exc:
        raise AdapterError(f"cannot save the adapter to '{directory}': {exc.strerror or exc}") from None
    return directory


def read_adapter_dir(directory: Union[str, Path]) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """(config dict, tensors) of an adapter directory, with clear errors for every bad case."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AdapterError(f"adapter folder '{directory}' not found")
    cfg_path, weights = directory / CONFIG, directory / WEIGHTS
    for path in (cfg_path, weights):
        if not path.is_file():
            raise AdapterError(f"'{directory}' is not an adapter folder: {path.name} is missing")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"adapter config '{cfg_path}' is corrupt: {exc}") from None
    if not isinstance(config, dict) or "method" not in config or "layers" not in config:
        raise AdapterError(f"adapter config '{cfg_path}' lacks 'method' or 'layers'; it was not written by colora")
    check_config(config, cfg_path)
    if config["method"] not in METHOD_NAMES:
        raise AdapterError(f"adapter '{directory}' uses method '{config['method']}', which this colora "
                           f"does not know (known: {', '.join(sorted(METHOD_NAMES))})")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"adapter weights '{weights}' are corrupt or truncated: {exc}") from None
    return config, tensors


# key -> (types it may have, what to say otherwise); None is always allowed except for method/layers
_FIELDS = {"method": ((str,), "a method name"), "layers": ((dict,), "a mapping of layer paths to tuners"),
           "name": ((str,), "a string"), "task": ((str,), "a string"),
           "base_arch": ((dict,), "a mapping such as {type: NAFNet, width: 16}"),
           "base_sha256": ((str,), "a hex string"), "strength": ((int, float), "a number between 0 and 1")}


def check_config(config, path):
    """Each field of adapter_config.json of the type colora writes, so a tampered file is one line."""
    for key, (types, what) in _FIELDS.items():
        value = config.get(key)
        if value is None and key not in ("method", "layers"):
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise AdapterError(f"adapter config '{path}': '{key}' must be {what}, got {value!r:.60}")
    strength = config.get("strength")
    if strength is not None and not 0.0 <= strength <= 1.0:  # also false for nan
        raise AdapterError(f"adapter config '{path}': 'strength' must be between 0 and 1, got {strength!r}")


def card(config):
    """A short model card for humans (the JSON is for the machine)."""
    arch = config.get("base_arch") or {}
    lines = [
        f"# colora adapter: {config.get('name')}",
        "",
        f"- task: {config.get('task') or 'not recorded'}",
        f"- method: {config['method']}",
        f"- trainable parameters: {config.get('trainable_params', 0):,} "
        f"({config.get('trainable_percent', 0):.2f} % of the base)",
        f"- base: {arch.get('type', '?')} (sha256 {str(config.get('base_sha256'))[:16]}…)",
        f"- trained on: {config.get('data') or 'not recorded'}",
        f"- colora version: {config.get('version', __version__)}",
        "",
        "Use it:",
        "",
        "```bash",
        f"colora restore -i photos/ -o restored/ --adapter {config.get('name')}",
        "```",
    ]
    for key, value in (config.get("training") or {}).items():
        lines.insert(-5, f"- {key}: {value}")
    return "\n".join(lines) + "\n"
