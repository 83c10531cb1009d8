"""`colora export`: the merged network (base + one adapter at a strength) as a file other tools load.

- `.safetensors` / `.pth`: the official key layout (the adapter folded into the weights, no colora
  keys), so the official NAFNet code, BasicSR and spandrel-based tools load it with strict=True;
  `.pth` holds {"params": state} as BasicSR and the official NAFNet checkpoints do.
- `.onnx`: see colora.inference.onnx (checked against the torch forward at export time).
A state dict holds one network, so several adapters (a chain) export only to .onnx, as one graph.
"""
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from colora.errors import ColoraError

FORMATS = (".safetensors", ".pth", ".onnx")


def merged_networks(model_path=None, adapters: Sequence[str] = (), adapter_dir=None, strength: float = 1.0,
                    force: bool = False) -> List[torch.nn.Module]:
    """One plain network per adapter (the base alone if none), each with its adapter merged at
    `strength`; loaded with the same lookup rules as `colora restore`."""
    from colora.adapters import load_adapter, merge_adapter, set_strength
    from colora.inference.restorer import WEIGHTS_DIR, default_model_path, find_adapter, load_model

    model_path = Path(model_path or default_model_path())
    nets = []
    for name in list(adapters) or [None]:
        model = load_model(model_path)
        if name is not None:
            folder = find_adapter(name, [adapter_dir, model_path.parent, WEIGHTS_DIR / "adapters"])
            load_adapter(model, folder, force=force)
            set_strength(model, strength)
            merge_adapter(model)
        nets.append(_plain_copy(model))
    return nets


def merged_state_dict(model: torch.nn.Module) -> dict:
    """The network's tensors as the model runs them: merged adapter tensors, no hub keys."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
            if not k.startswith("colora_adapters.")}


def _plain_copy(model):
    """The same network without a hub or hooks, holding the merged weights (strictly loaded), in the
    same inference form (colora.archs.contract)."""
    from colora.archs import build_arch

    plain = build_arch(model.network_g)
    plain.load_state_dict(merged_state_dict(model), strict=True)
    if model.inference_train_size is not None:
        plain.prepare_for_inference(model.inference_train_size)
    return plain.eval()


def export(output, model_path=None, adapters: Sequence[str] = (), adapter_dir=None, strength: float = 1.0,
           force: bool = False, check_image: Optional["object"] = None) -> dict:
    """Write the merged network to `output` (format from its suffix); returns what was written
    (for .onnx also the checked max |diff| against torch)."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise ColoraError(f"cannot export to '{output.name}': the name must end in {', '.join(FORMATS)}")
    if len(adapters) > 1 and suffix != ".onnx":
        raise ColoraError(f"{len(adapters)} adapters form a chain of networks, which a {suffix} state dict "
                          "cannot hold; export each adapter on its own, or the chain as .onnx")
    output.parent.mkdir(parents=True, exist_ok=True)
    nets = merged_networks(model_path, adapters, adapter_dir, strength, force)
    if suffix == ".onnx":
        from colora.inference.onnx import export_onnx

        return export_onnx(nets, output, check_image=check_image)
    state = merged_state_dict(nets[0])
    if suffix == ".pth":
        torch.save({"params": state}, output)
    else:
        from colora.checkpoint import save_checkpoint

        size = nets[0].inference_train_size
        extra = {"train_size": str(size)} if size is not None else None
        save_checkpoint(output, state, network_g=nets[0].network_g, extra_metadata=extra)
    return {"path": output, "tensors": len(state), "networks": 1}
