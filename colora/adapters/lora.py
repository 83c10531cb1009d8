"""LoRA for convolutions and linear layers, and CoLoRA = LoRA with per-layer ranks from FAIG.

For a weight W (C_out x C_in/g x k x k): A has the layer's kernel (r x C_in/g x k x k, Kaiming-
uniform, as loralib/peft), B is 1x1 (C_out x r, zeros), and the update is
dW[o,i,:,:] = s * sum_j B[o,j] A[j,i,:,:] with s = alpha / r. The update is formed inside the
forward (one conv with W + dW) rather than as a second conv branch: on a conv net the branch doubles
the activations the backward walks through; forming the weight costs one small matmul.

Depthwise and grouped convs get no LoRA: their weight is C_out x k*k (9 numbers a channel), so a
low-rank factor saves nothing; `train_depthwise` tunes them fully instead.
"""
import dataclasses
import math

import torch
from torch import nn

from colora.adapters.base import (Method, Preparation, Tuner, adaptable_layers, kaiming_uniform_, merge_specs,
                                  register_tuner, resolve_ranks, select)
from colora.adapters.registry import register_method


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


@register_method("lora")
class LoRA(Method):
    """LoRA on the targeted conv/linear layers (Hu et al., ICLR 2022), at `rank` everywhere unless
    `rank_pattern` or per-layer `ranks` say otherwise; rank 0 means no adapter on that layer. Ranks
    above min(C_out, C_in*k*k) are clamped (a larger rank cannot express more)."""

    extras = {"bias": False, "norm": False, "scale": False, "depthwise": False}
    ranked = True

    def layers(self, model, settings, calib=None, ranks=None):
        modules = dict(model.named_modules())
        paths = select(model, settings.target, adaptable_layers(model))
        per_layer = resolve_ranks(model, paths, settings.rank, settings.rank_pattern, ranks)
        lora = {p: [{"kind": "lora", "rank": min(r, max_rank(modules[p])), "alpha": settings.alpha}]
                for p, r in per_layer.items() if r > 0}
        return merge_specs(lora, self.extra_specs(model, settings))

    def prepare(self, run):
        """With `match_budget`, the one rank whose adapter fills `budget` (uniform LoRA at CoLoRA's
        budget, the comparison of the paper's fine-tuning ablation); else `rank` as given."""
        adapter = run.adapter
        if not adapter.allocation.match_budget:
            return Preparation(adapter)
        rank = run.uniform_rank(self.extra_params(run.model, adapter.settings))
        return Preparation(dataclasses.replace(adapter, settings=dataclasses.replace(adapter.settings, rank=rank)))


@register_method("colora")
class CoLoRA(LoRA):
    """CoLoRA (Park et al., ECCV 2024): LoRA whose per-layer ranks follow each layer's FAIG
    contribution to the task, under `budget` (colora.tuning.allocation). It also trains the biases,
    norm affines and layer scales by default: the paper's FAIG finds them the most important per
    parameter."""

    extras = {"bias": True, "norm": True, "scale": True, "depthwise": False}

    def prepare(self, run):
        ranks, table = run.allocate_ranks(self.extra_params(run.model, run.adapter.settings))
        return Preparation(run.adapter, ranks=ranks, table=table)
