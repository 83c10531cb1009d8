"""SVDiff (Han et al., ICCV 2023): tune only the singular values of each weight.

W viewed as C_out x (C_in*k*k) = U diag(sigma) V^T, one thin SVD computed when the adapter is built
and kept as non-persistent buffers (they are recomputed from the base on load; the base hash makes
sure it is the same base). The trained shift delta (init 0) gives W' = U diag(ReLU(sigma + delta)) V^T,
applied as W + U diag(ReLU(sigma + delta) - sigma) V^T so that delta = 0 is exactly the base.
SVDiff wants a high learning rate (~1e-3).
"""
import torch
from torch import nn

from colora.adapters.base import Method, Tuner, adaptable_layers, merge_specs, register_tuner, select
from colora.adapters.registry import register_method


@register_tuner
class SVDiffTuner(Tuner):
    kind = "svdiff"
    touches = ("weight",)

    def __init__(self, owner):
        super().__init__(owner)
        w = owner.weight.detach().flatten(1).float()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        self.register_buffer("u", u, persistent=False)
        self.register_buffer("s", s, persistent=False)
        self.register_buffer("vh", vh, persistent=False)
        self.svdiff_delta = nn.Parameter(torch.zeros_like(s))

    def deltas(self, base):
        shift = torch.relu(self.s + self.svdiff_delta) - self.s
        return {"weight": ((self.u * shift) @ self.vh).view(base["weight"].shape)}


@register_method("svdiff")
class SVDiff(Method):
    """Every targeted conv/linear weight, depthwise ones included (their SVD has k*k values); the
    extras only where their flags ask."""

    extras = {"bias": False, "norm": False, "scale": False, "depthwise": False}

    def layers(self, model, settings, calib=None, ranks=None):
        paths = select(model, settings.target, adaptable_layers(model, depthwise=True))
        return merge_specs({p: [{"kind": "svdiff"}] for p in paths}, self.extra_specs(model, settings))
