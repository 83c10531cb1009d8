"""What every architecture declares, so no module outside colora/archs/ names one.

A registered network subclasses `Architecture` and states, next to the layout it describes:

- its **parts**, `PARTS`: the five stages of an image-restoration U-Net in forward order (intro,
  encoder, middle, decoder, ending), each a regex over module paths. FAIG reports its scores per
  part and adapters accept part names as targets (the paper's "decoder-only" baseline);
- its **padding**: `pad_multiple` (the sides its downsamplings need) and `PAD_MODE` (zeros for
  NAFNet as its official `check_image_size`, reflection for Restormer), used by its own forward
  and by anything that runs it outside torch (an exported ONNX graph);
- `in_channels`, the channels of the images it takes;
- `RESIDUAL_WRITERS`: a regex of the module paths (matched whole) of the 1x1 convs whose output is
  added to the residual stream, where a per-channel method (SCT) acts on what each block adds;
- `infer_options(state)`: the constructor options that produce a state dict, so a BasicSR `.pth`
  with no header still rebuilds the network that fits it, and `canonical_options` where several
  values of an option give the same tensors (Restormer's FFN expansion), so a checkpoint's header
  is checked against its tensors without building anything;
- `convert_for_inference(train_size)`: what changes, without touching a weight, for photos larger
  than the training patches (NAFNet: TLC's local pooling; Restormer: nothing). The conversion is in
  place, so `network_g` -- what checkpoints and adapters record -- stays the training form, and an
  adapter trained on the plain network loads onto the inference one;
- `export_form()`: the form a graph exporter traces (NAFNet: TLC's branch-free mean);
- `training_form(network_g)`: for a variant registered only for inference (NAFNetLocal), the
  architecture its weights train as, so it is compared with the published configurations.

`colora.archs.registry.register_arch` refuses a class that breaks the contract, at import time.
"""
import contextlib
import re
from typing import Any, ClassVar, ContextManager, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

PART_NAMES: Tuple[str, ...] = ("intro", "encoder", "middle", "decoder", "ending")
PAD_MODES: Tuple[str, ...] = ("constant", "reflect")


class Architecture(nn.Module):
    """Base class of the registered networks: the contract above, with the defaults of a network
    whose inference form is its training form."""

    PARTS: ClassVar[Dict[str, str]] = {}
    # Domain of each constructor option (lists: of each item), checked before anything is built: a
    # config or a checkpoint header asking for 10,000 blocks is refused, not allocated.
    LIMITS: ClassVar[Dict[str, Tuple[float, float]]] = {}
    PAD_MODE: ClassVar[str] = "constant"
    RESIDUAL_WRITERS: ClassVar[str] = ""

    pad_multiple: int
    in_channels: int
    # The training patch side the network was converted for (None: still the training form).
    inference_train_size: Optional[int] = None

    @classmethod
    def infer_options(cls, state: Mapping[str, torch.Tensor]) -> Optional[dict]:
        """The constructor options (without `type`) whose state dict has `state`'s keys and shapes,
        or None when `state` is not this architecture's. A KeyError or IndexError on a partial
        state dict also means "not mine"."""
        return None

    @classmethod
    def canonical_options(cls, network_g: Mapping[str, Any]) -> Dict[str, Any]:
        """`network_g` (every option present) with each option that several values give the same
        tensors for replaced by the one `infer_options` returns, so a header and the options
        inferred from its tensors compare equal exactly when they build the same network (the
        default: every option is its own representative)."""
        return dict(network_g)

    @classmethod
    def training_form(cls, network_g: Mapping[str, Any]) -> Dict[str, Any]:
        """The `network_g` of the network these weights train as (the default: `network_g` itself;
        an inference-only variant such as NAFNetLocal names its training architecture)."""
        return dict(network_g)

    def convert_for_inference(self, train_size: int) -> None:
        """Change, in place and without touching a weight, what full-size inference needs (the
        default: nothing). `train_size` is the side of the training patches."""

    def prepare_for_inference(self, train_size: int) -> "Architecture":
        """This network as `colora restore` and export run it: converted for photos larger than the
        `train_size` patches it was trained on, in eval mode. The weights, state-dict keys and
        `network_g` are unchanged."""
        self.convert_for_inference(int(train_size))
        self.inference_train_size = int(train_size)
        return self.eval()

    def export_form(self) -> ContextManager[None]:
        """A context in which the forward is the one a graph exporter should trace (the default:
        the ordinary forward)."""
        return contextlib.nullcontext()

    def part_of(self, path: str) -> str:
        """The part (one of PART_NAMES) a module path belongs to, or 'other'."""
        for part in PART_NAMES:
            if re.search(self.PARTS[part], path):
                return part
        return "other"


def check_contract(cls: type) -> None:
    """Raise TypeError when `cls` does not declare the contract (a programming error, found when the
    module registering it is imported, not when a user first asks for its decoder)."""
    name = cls.__name__
    if not (isinstance(cls, type) and issubclass(cls, Architecture)):
        raise TypeError(f"{name} must subclass colora.archs.contract.Architecture to be registered")
    if set(cls.PARTS) != set(PART_NAMES):
        raise TypeError(f"{name}.PARTS must name exactly the parts {', '.join(PART_NAMES)}; "
                        f"it names {', '.join(cls.PARTS) or 'none'}")
    for what, rx in [*((f"PARTS['{part}']", rx) for part, rx in cls.PARTS.items()),
                     ("RESIDUAL_WRITERS", cls.RESIDUAL_WRITERS)]:
        try:
            re.compile(rx)
        except re.error as exc:
            raise TypeError(f"{name}.{what} is not a valid regular expression: {exc}") from None
    if not cls.RESIDUAL_WRITERS:
        raise TypeError(f"{name}.RESIDUAL_WRITERS must name the convs that write into the residual stream")
    if cls.PAD_MODE not in PAD_MODES:
        raise TypeError(f"{name}.PAD_MODE must be one of {', '.join(PAD_MODES)}, not {cls.PAD_MODE!r}")


def count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered children `<prefix>0.`, `<prefix>1.`, ... a state dict holds (one past the
    highest index: an nn.Sequential or nn.ModuleList is numbered from 0 without gaps)."""
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0
