"""What `colora info` reports: architecture, size and cost of a YAML preset or a checkpoint."""
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from colora.archs import build_arch, full_config, official_name
from colora.checkpoint import check_fits, infer_network_g, load_state_dict, read_metadata
from colora.errors import ColoraError


def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(network_g, size=256):
    """Multiply-accumulates of one forward pass on a 1x3xSxS input (counted on the meta device)."""
    cfg = full_config(network_g)
    with torch.device("meta"):
        model = build_arch(network_g)
        x = torch.empty(1, cfg.get("img_channel", cfg.get("inp_channels", 3)), size, size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def describe(path, size=256):
    """A dict describing an options YAML or a checkpoint (what `colora info` prints)."""
    path = Path(path)
    if path.suffix.lower() in (".yml", ".yaml"):
        from colora.options import load_options

        opts = load_options(path)
        network_g, kind, extra = opts.network_g.to_dict(), "options", {"name": opts.name}
    else:
        state = load_state_dict(path)
        meta = read_metadata(path)
        network_g = json.loads(meta["network_g"]) if "network_g" in meta else infer_network_g(state)
        if network_g is None:
            raise ColoraError(f"'{path}' is not a NAFNet or Restormer checkpoint; cannot tell its architecture")
        with torch.device("meta"):
            check_fits(build_arch(network_g), state, path)
        kind = "checkpoint"
        extra = {"has_ema": any(k.startswith("params_ema.") for k in load_file_keys(path)),
                 "tensors": len(state)}
    with torch.device("meta"):
        model = build_arch(network_g)
    return {"path": str(path), "kind": kind, **extra, "network_g": full_config(network_g),
            "official_config": official_name(network_g), "params": count_params(model),
            f"gmacs_at_{size}": round(count_macs(network_g, size) / 1e9, 3)}


def load_file_keys(path):
    """Tensor names in a safetensors header (cheap; no tensor is read)."""
    if Path(path).suffix != ".safetensors":
        return []
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return list(fh.keys())
