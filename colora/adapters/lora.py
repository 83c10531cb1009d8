"""LoRA for convolutions and linear layers, and CoLoRA = LoRA with per-layer ranks from FAIG.

For a weight W (C_out x C_in/g x k x k): A has the layer's kernel (r x C_in/g x k x k, Kaiming-
uniform, as loralib/peft), B is 1x1 (C_out x r, zeros), and the update is
dW[o,i,:,:] = s * sum_j B[o,j] A[j,i,:,:] with s = alpha / r. The update is formed inside the
forward (one conv with W + dW) rather than as a second conv branch: on a conv net the branch doubles
the activations the backward walks through; forming the weight costs one small matmul.

Depthwise and grouped convs get no LoRA: their weight is C_out x k*k (9 numbers a channel), so a
low-rank factor saves nothing; `train_depthwise` tunes them fully instead.
"""
from torch import nn

from colora.adapters.base import (Tuner, adaptable_layers, delta_specs, kaiming_uniform_, merge_specs,
                                  register_method, register_tuner, resolve_ranks, select)
import math

import torch


class _Factor(nn.Module):
    """Holds one LoRA factor as `.weight`, so file keys read `lora_A.weight` like peft's."""

    def __init__(self, tensor):
        super().__init__()
        self.weight = nn.Parameter(tensor)


@register_tuner
class LoRATuner(Tuner):
    kind = "lora"
    touches = ("weight",)

    def __init__(self, owner, rank, alpha=None):
        super().__init__(owner, rank=int(rank), alpha=alpha)
        w = owner.weight
        self.lora_A = _Factor(kaiming_uniform_(torch.empty(rank, *w.shape[1:], device=w.device)))
        self.lora_B = _Factor(torch.zeros(w.shape[0], rank, *([1] * (w.dim() - 2)), device=w.device))
        self.scale = (alpha if alpha is not None else rank) / rank

    @classmethod
    def check(cls, owner, settings):
        rank, limit = settings.get("rank"), max_rank(owner) if hasattr(owner, "weight") else 0
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
            return f"rank {rank!r} is not between 1 and {limit} (min of C_out and C_in*k*k)"
        alpha = settings.get("alpha")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                                  or not math.isfinite(alpha)):
            return f"alpha {alpha!r} is not a finite number"
        return super().check(owner, settings)

    def deltas(self, base):
        w = base["weight"]
        delta = self.lora_B.weight.flatten(1) @ self.lora_A.weight.flatten(1)
        return {"weight": (delta * self.scale if self.scale != 1.0 else delta).view(w.shape)}

    def write_merged(self, out, pname, bases, alpha):
        """out = W + alpha * scale * B A as one addmm into the merged buffer (no delta tensor)."""
        w, b, a = bases["weight"], self.lora_B.weight.flatten(1), self.lora_A.weight.flatten(1)
        if out.is_contiguous() and w.is_contiguous() and w.dtype == b.dtype:
            torch.addmm(w.view(w.shape[0], -1), b, a, alpha=alpha * self.scale, out=out.view(w.shape[0], -1))
        else:  # e.g. a channels_last 3x3 kernel: the flat view would not be its memory
            super().write_merged(out, pname, bases, alpha)


def max_rank(module):
    w = module.weight
    return min(w.shape[0], w[0].numel())


@register_method("lora", "colora")
def lora_layers(model, cfg, calib=None):
    """LoRA on the targeted conv/linear layers; rank 0 means no adapter on that layer. Ranks above
    min(C_out, C_in*k*k) are clamped (a larger rank cannot express more). CoLoRA also trains the
    biases, norm affines and layer scales by default: the paper's FAIG finds them the most
    important per parameter."""
    modules = dict(model.named_modules())
    paths = select(model, cfg["target"], adaptable_layers(model))
    ranks = resolve_ranks(model, paths, cfg["rank"], cfg["rank_pattern"])
    lora = {p: [{"kind": "lora", "rank": min(r, max_rank(modules[p])), "alpha": cfg["alpha"]}]
            for p, r in ranks.items() if r > 0}
    return merge_specs(lora, extra_specs(model, cfg, default=cfg["method"] == "colora"))


def extra_specs(model, cfg, default):
    """Delta tuners for the optional `train_bias`, `train_norm`, `train_layer_scale`,
    `train_depthwise` flags (None = the method's default)."""
    flags = {"bias": "train_bias", "norm": "train_norm", "scale": "train_layer_scale"}
    cats = {cat for cat, key in flags.items() if (default if cfg[key] is None else cfg[key])}
    if cfg.get("train_depthwise"):
        cats.add("depthwise")
    return delta_specs(model, cats) if cats else {}
