"""Additive deltas on whole base tensors: BitFit, decoder-only and full fine-tuning.

A delta (init 0) is trained instead of the tensor itself so the base stays frozen and bitwise
intact, the adapter file holds only what changed, and strength / swap / merge work as for LoRA.
(Adam is invariant to that shift; decoupled weight decay then pulls toward the base, not to 0.)
- `bitfit` (Ben Zaken et al., ACL 2022): every bias, norm biases included.
- `decoder`: every tensor of the decoder and the output layer (the paper's decoder-only baseline).
- `full`: every tensor.
"""
import torch
from torch import nn

from colora.adapters.base import Method, Tuner, classify_parameters, iter_base_modules, register_tuner, select
from colora.adapters.registry import register_method


@register_tuner
class DeltaTuner(Tuner):
    kind = "delta"

    def __init__(self, owner, params):
        super().__init__(owner, params=list(params))
        self.touches = tuple(params)
        for pname in params:
            self.register_parameter(f"{pname}_delta", nn.Parameter(torch.zeros_like(getattr(owner, pname))))

    @classmethod
    def check(cls, owner, settings):
        params = settings.get("params")
        if not isinstance(params, list) or not all(isinstance(p, str) and isinstance(
                getattr(owner, p, None), torch.Tensor) for p in params):
            return f"params {params!r} must list tensors of the layer"
        return None

    def deltas(self, base):
        return {pname: getattr(self, f"{pname}_delta") for pname in self.touches}


def _specs(pairs):
    layers = {}
    for path, pname in pairs:
        layers.setdefault(path, [{"kind": "delta", "params": []}])[0]["params"].append(pname)
    return layers


@register_method("bitfit")
class BitFit(Method):
    """Every bias, norm biases included (Ben Zaken et al., ACL 2022)."""

    def layers(self, model, settings, calib=None, ranks=None):
        return _specs((path, p) for path, p, _ in classify_parameters(model) if p == "bias")


@register_method("decoder")
class Decoder(Method):
    """Every tensor of the `target` parts (default: the decoder and the output layer)."""

    def layers(self, model, settings, calib=None, ranks=None):
        owners = [p for p, m in iter_base_modules(model) if any(True for _ in m.parameters(recurse=False))]
        chosen = set(select(model, settings.target or ["decoder", "ending"], owners))
        return _specs((path, p) for path, p, _ in classify_parameters(model) if path in chosen)


@register_method("full")
class Full(Method):
    """Every tensor of the network: full fine-tuning, kept as deltas on a frozen base."""

    def layers(self, model, settings, calib=None, ranks=None):
        return _specs((path, p) for path, p, _ in classify_parameters(model))
