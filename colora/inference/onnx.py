"""ONNX export of the merged network and the ONNX Runtime backend (`pip install colora[onnx]`).

The graph is the network's inference form (colora.archs.contract; NAFNet: TLC), not the training
one: `colora restore` runs that form, so an exported file gives the same pixels as the torch backend
on any image size. It is traced in the architecture's `export_form` (NAFNet: TLC's branch-free
local mean, LocalAvgPool2d.traced), so one graph serves every height and width. It is traced by the
TorchScript exporter (dynamo=False): on these networks it takes seconds where the dynamo exporter
takes minutes, and the graph is the same. The graph takes sides that are multiples of the network's
padding multiple and OnnxRunner pads (the architecture's PAD_MODE: zeros for NAFNet, reflection for
Restormer, as the networks do) and crops around it. Several adapters export as one graph running
the merged networks in sequence (clamped between, as restore).
Export checks the ONNX Runtime output against torch on a real photo (max |diff| <= 1e-4 in fp32).
"""
import contextlib
import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from colora.archs.layers import pad_to_multiple
from colora.errors import ColoraError

OPSET = 18
TOLERANCE = 1e-4


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ColoraError("the onnxruntime backend needs the onnx extra: pip install 'colora[onnx]'") from None
    return onnxruntime


class _Chain(nn.Module):
    """Merged networks in sequence; its input sides are multiples of `multiple`."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        for i, net in enumerate(self.nets):
            x = net(x)
            if i + 1 < len(self.nets):
                x = x.clamp(0, 1)
        return x


def check_photo():
    """A real photo (scikit-image's chelsea, 451x300) as a (1, 3, H, W) float tensor."""
    from skimage import data

    return torch.from_numpy(data.chelsea().astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def export_onnx(nets: Sequence[nn.Module], output, check_image=None) -> dict:
    """Export `nets` (merged, plain networks) as one graph to `output` and check it."""
    import onnx

    require_onnxruntime()
    from colora import __version__

    multiple, mode = nets[0].pad_multiple, nets[0].PAD_MODE
    graph = _Chain(nets).eval()
    x = torch.rand(1, nets[0].in_channels, 8 * multiple, 6 * multiple)
    output = Path(output)
    with contextlib.ExitStack() as forms, warnings.catch_warnings():
        for net in nets:  # the form each architecture wants traced (NAFNet: TLC's branch-free mean)
            forms.enter_context(net.export_form())
        warnings.simplefilter("ignore")  # TracerWarnings: the branches traced hold for every size
        torch.onnx.export(graph, (x,), str(output), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {2: "height", 3: "width"},
                                                                 "output": {2: "height", 3: "width"}})
    model = onnx.load(str(output))
    meta = {"pad_multiple": str(multiple), "pad_mode": mode, "producer": f"colora {__version__}",
            "network_g": json.dumps(nets[0].network_g), "networks": str(len(nets))}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(output))
    photo = check_photo() if check_image is None else check_image
    with torch.inference_mode():
        ref = graph(pad_to_multiple(photo, multiple, mode))[..., :photo.shape[-2], :photo.shape[-1]]
    got = OnnxRunner(output, clamp=False)(photo)
    diff = float((got - ref).abs().max())
    if not diff <= TOLERANCE:
        output.unlink()
        raise ColoraError(f"the ONNX graph differs from torch by {diff:.2e} (> {TOLERANCE:g}) on the check "
                          "photo; nothing was written")
    return {"path": output, "networks": len(nets), "max_abs_diff": diff, "opset": OPSET}


class OnnxRunner:
    """Runs an exported .onnx file with ONNX Runtime on the CPU, with the torch runner's interface."""

    precision = "fp32"

    def __init__(self, path, threads: int = 0, clamp: bool = True):
        ort = require_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise ColoraError(f"ONNX model '{path}' not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ColoraError(f"'{path}' is not a readable ONNX model: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.multiple, self.mode = int(meta.get("pad_multiple", 1)), meta.get("pad_mode", "constant")
        self.input = self.session.get_inputs()[0].name
        self.clamp = clamp

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x.float(), self.multiple, self.mode)
        out = self.session.run(None, {self.input: np.ascontiguousarray(x.numpy())})[0]
        out = torch.from_numpy(out)[..., :h, :w]
        return out.clamp_(0, 1) if self.clamp else out
