"""DiffFit (Xie et al., ICCV 2023): per-channel scales gamma and biases, plus norm affines.

Each targeted layer computes y = gamma * (W x + b + b_f) with gamma (init 1) per output channel and
a new bias b_f (init 0); layers without a bias (Restormer's) get one this way. As weight deltas:
W' = diag(gamma) W and b' = gamma * (b + b_f). Norm affines are trained as deltas (DiffFit trains
them too). DiffFit wants a learning rate ~10x pre-training's.
"""
import torch
from torch import nn

from colora.adapters.base import Method, Tuner, adaptable_layers, merge_specs, register_tuner, select
from colora.adapters.registry import register_method


@register_tuner
class DiffFitTuner(Tuner):
    kind = "difffit"
    touches = ("weight", "bias")

    def __init__(self, owner):
        super().__init__(owner)
        out = owner.weight.shape[0]
        self.difffit_gamma = nn.Parameter(torch.ones(out, device=owner.weight.device))
        self.difffit_bias = nn.Parameter(torch.zeros(out, device=owner.weight.device))

    def deltas(self, base):
        w, b = base["weight"], base["bias"]
        g = self.difffit_gamma
        dw = (g - 1).view(-1, *([1] * (w.dim() - 1))) * w
        if b is None:
            return {"weight": dw, "bias": g * self.difffit_bias}
        return {"weight": dw, "bias": g * (b + self.difffit_bias) - b}


@register_method("difffit")
class DiffFit(Method):
    """Scales and biases on every targeted conv/linear layer, and the norm affines unless
    `train_norm: false` (its own biases make `train_bias` moot)."""

    extras = {"norm": True}

    def layers(self, model, settings, calib=None, ranks=None):
        paths = select(model, settings.target, adaptable_layers(model, depthwise=True))
        return merge_specs({p: [{"kind": "difffit"}] for p in paths}, self.extra_specs(model, settings))
