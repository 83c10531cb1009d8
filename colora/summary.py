"""What `colora info` reports: architecture, size and cost of a YAML preset or a checkpoint."""
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from colora.archs import build_arch, full_config, official_name
from colora.checkpoint import checkpoint_network_g, load_state_dict, read_metadata, weight_groups


def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(network_g, size=256):
    """Multiply-accumulates of one forward pass on a 1xCxSxS input (counted on the meta device)."""
    with torch.device("meta"):
        model = build_arch(network_g)
        x = torch.empty(1, model.in_channels, size, size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def describe(path, size=256):
    """A dict describing an options YAML or a checkpoint (what `colora info` prints)."""
    path = Path(path)
    if path.suffix.lower() in (".yml", ".yaml"):
        from colora.options import load_options

        opts = load_options(path)
        if opts.network_g.type is None:  # a fine-tuning preset: the base checkpoint's architecture
            from colora.tuning.finetune import base_network_g

            opts.network_g = base_network_g(opts)[1]
        network_g, kind, extra = opts.network_g.to_dict(), "options", {"name": opts.name}
    elif path.is_dir():
        return describe_adapter(path)
    else:
        state = load_state_dict(path)
        network_g = checkpoint_network_g(path, state, read_metadata(path))
        kind = "checkpoint"
        extra = {"has_ema": "params_ema" in weight_groups(path), "tensors": len(state)}
    with torch.device("meta"):
        model = build_arch(network_g)
    return {"path": str(path), "kind": kind, **extra, "network_g": full_config(network_g),
            "official_config": official_name(network_g), "params": count_params(model),
            f"gmacs_at_{size}": round(count_macs(network_g, size) / 1e9, 3)}


def describe_adapter(folder):
    """An adapter folder: its method, task, size and the base it was made for (no base needed)."""
    from colora.adapters.files import read_adapter_dir

    config, tensors = read_adapter_dir(folder)
    return {"path": str(folder), "kind": "adapter", "name": config.get("name"), "method": config["method"],
            "task": config.get("task"), "layers": len(config["layers"]), "tensors": len(tensors),
            "params": sum(t.numel() for t in tensors.values()),
            "trainable_percent": config.get("trainable_percent"), "base_arch": config.get("base_arch"),
            "base_sha256": config.get("base_sha256"), "strength": config.get("strength", 1.0)}
