"""SCT, salient channel tuning (Zhao et al., IJCV 2024): a K x K map on the K most salient channels.

On each targeted 1x1 conv, the K output channels with the largest mean L2 norm of their feature map
over calibration images (task inputs) are chosen; a K x K map A (init 0) on those channels turns
the output y into y + P^T A P y, i.e. W' = (I + P^T A P) W and b' = (I + P^T A P) b. The chosen
indices are saved with the adapter (`sct_index`). Default K = C_out / 8 (96 of 768 in ViT-B).
By default SCT targets the 1x1 convs that write into the residual stream (NAFNet's conv3/conv5,
Restormer's project_out).
"""
import torch
from torch import nn

from colora.adapters.base import Method, Preparation, Tuner, adaptable_layers, register_tuner, select
from colora.adapters.registry import register_method
from colora.archs.contract import Architecture
from colora.errors import AdapterError


@register_tuner
class SCTTuner(Tuner):
    kind = "sct"
    touches = ("weight", "bias")

    def __init__(self, owner, channels, index=None):
        super().__init__(owner, channels=int(channels))
        index = torch.as_tensor(index if index is not None else range(channels), dtype=torch.long)
        self.register_buffer("sct_index", index.to(owner.weight.device))
        self.sct_map = nn.Parameter(torch.zeros(channels, channels, device=owner.weight.device))

    @classmethod
    def check(cls, owner, settings):
        channels, index = settings.get("channels"), settings.get("index")
        out = owner.weight.shape[0] if hasattr(owner, "weight") else 0
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= out:
            return f"channels {channels!r} is not between 1 and the layer's {out} output channels"
        if index is not None and (not isinstance(index, list) or len(index) != channels or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < out for i in index)):
            return f"index must list {channels} channel numbers below {out}"
        return None

    def deltas(self, base):
        w, b, idx = base["weight"], base["bias"], self.sct_index
        flat = w.flatten(1)
        dw = torch.zeros_like(flat).index_copy(0, idx, self.sct_map @ flat[idx]).view(w.shape)
        out = {"weight": dw}
        if b is not None:
            out["bias"] = torch.zeros_like(b).index_copy(0, idx, self.sct_map @ b[idx])
        return out


@torch.no_grad()
def channel_saliency(model, paths, calib):
    """Mean over calibration images of each output channel's L2 norm, per layer."""
    modules = dict(model.named_modules())
    sums, count, hooks = {p: 0.0 for p in paths}, [0], []
    for p in paths:
        def hook(module, args, out, p=p):
            sums[p] = sums[p] + out.float().pow(2).sum(dim=(2, 3)).sqrt().sum(0)
        hooks.append(modules[p].register_forward_hook(hook))
    try:
        model.eval()
        for batch in calib:
            model(batch)
            count[0] += batch.shape[0]
    finally:
        for h in hooks:
            h.remove()
    if count[0] == 0:
        raise AdapterError("sct needs calibration images, but the calibration set was empty")
    return {p: s / count[0] for p, s in sums.items()}


@register_method("sct")
class SCT(Method):
    """The K most salient channels of each targeted 1x1 conv, salience measured on `calib`."""

    CALIBRATION_IMAGES = 8

    def layers(self, model, settings, calib=None, ranks=None):
        if calib is None:
            raise AdapterError("sct picks channels from task images: pass calibration inputs (calib=...)")
        modules = dict(model.named_modules())
        one_by_one = [p for p in adaptable_layers(model) if isinstance(modules[p], nn.Conv2d)
                      and modules[p].kernel_size == (1, 1)]
        # default: the 1x1 convs the architecture declares as writing into its residual stream
        writers = model.RESIDUAL_WRITERS if isinstance(model, Architecture) else ".*"
        paths = select(model, settings.target or [writers], one_by_one)
        saliency = channel_saliency(model, paths, calib)
        layers = {}
        for p in paths:
            out = modules[p].weight.shape[0]
            k = min(out, settings.sct_channels or max(1, out // 8))
            index = torch.topk(saliency[p], k).indices.sort().values.tolist()
            layers[p] = [{"kind": "sct", "channels": k, "index": index}]
        return layers

    def prepare(self, run):
        """The calibration images: the first task inputs of the training set."""
        return Preparation(run.adapter, calib=run.inputs(self.CALIBRATION_IMAGES))
