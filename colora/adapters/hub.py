"""The adapter hub: one frozen base, several named adapters, swapped in place.

Every method (LoRA, SVDiff, DiffFit, SCT, bias/norm/full deltas) is a `Tuner`: a small module tied
to one base module (its *owner*, e.g. a Conv2d or a NAFBlock) that returns additive deltas for some
of the owner's tensors (`weight`, `bias`, `beta`, ...). The `AdapterHub` (registered on the model
as `colora_adapters`, so `.to()`, DDP and optimizers see the tuners) turns those deltas into the
tensors the owner uses:

* unmerged (training) mode: a forward pre-hook installs `base + strength * delta` in the owner for
  the duration of its forward only -- one conv with W + s*B*A instead of a conv plus a LoRA branch,
  no copy of the base kept, and gradients flow to the tuner only (the base is frozen);
* merged (inference) mode: the effective tensors are computed once into per-slot buffers and
  installed; the base tensors are kept aside untouched, so unmerge is exact and A -> B -> A gives
  A's outputs bit for bit.

Base parameter names never change, so `base_state_dict` is the plain network's state dict.
"""
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from colora.adapters.base import TUNERS, Layers
from colora.errors import AdapterError


class _Slot:
    """One base tensor an adapter may change: the base object, the merged buffer, and (keep_merged)
    each adapter's own merged tensor."""

    __slots__ = ("base", "merged", "kept")

    def __init__(self, base):
        self.base, self.merged, self.kept = base, None, {}


class _HubHook:
    """An owner's forward (pre-)hook. It holds the hub as an attribute rather than closing over it,
    so `copy.deepcopy(model)` (an EMA copy) gets hooks that drive the copy's own hub."""

    def __init__(self, hub, method, path):
        self.hub, self.method, self.path = hub, method, path

    def __call__(self, module, args, *output):
        getattr(self.hub, self.method)(self.path, module)


def _escape(path):
    return path.replace(".", "__")


class AdapterHub(nn.Module):
    """Holds the named adapters of one model and decides which tensors its modules see."""

    def __init__(self, model):
        super().__init__()
        self.adapters = nn.ModuleDict()  # name -> ModuleDict(escaped owner path -> ModuleList of tuners)
        self.configs = {}  # name -> resolved config dict (what adapter_config.json records)
        self.active, self.strength, self.merged = None, 1.0, False
        self._owners = {}  # owner path -> module (a plain dict: not registered, no cycle in modules())
        self._slots = {}  # owner path -> {param name: _Slot}
        self._hooks = []
        self.base_sha256 = None  # of the frozen base, once computed (colora.adapters.api)
        self._blended = set()  # owner paths holding a blend (merged mode), undone by the next switch
        self._keep = False  # keep_merged: one merged tensor per adapter, swaps re-point instead of rewrite
        self.generation = 0  # counts changes of the merged tensors: a frozen torch.compile checks it (runtime.py)
        for p in model.parameters():
            p.requires_grad_(False)

    # ---- building ------------------------------------------------------------------------------
    def add(self, name: str, layers: Layers, model: nn.Module, config: dict) -> nn.ModuleDict:
        """Create adapter `name` from {owner path: [tuner spec]} (specs as `Tuner.spec()` gives)."""
        if name in self.adapters:
            raise AdapterError(f"an adapter named '{name}' is already attached; remove it or pick another name")
        modules = dict(model.named_modules())
        self._check_specs(name, layers, modules)
        group = nn.ModuleDict()
        for path, specs in layers.items():
            owner = modules[path]
            tuners = nn.ModuleList()
            for spec in specs:
                spec = dict(spec)
                kind = spec.pop("kind")
                tuners.append(TUNERS[kind](owner, **spec))
            group[_escape(path)] = tuners
            self._track(path, owner, tuners)
        ref = next((p for p in model.parameters()), None)
        if ref is not None:
            group.to(device=ref.device)
        for p in group.parameters():
            p.requires_grad_(False)  # until activated (DDP rejects parameters that get no grad)
        self.adapters[name] = group
        self.__dict__.pop("_plan_cache", None)  # a new slot may have appeared on a shared owner
        self.configs[name] = dict(config, layers={p: [t.spec() for t in self._tuners(name, p)] for p in layers})
        return group

    @staticmethod
    def _check_specs(name, layers, modules):
        """Every layer and tuner spec well-formed and fitting its layer, before any is built."""
        if not isinstance(layers, dict):
            raise AdapterError(f"adapter '{name}': 'layers' must map layer paths to tuner lists, "
                               f"not a {type(layers).__name__}")
        for path, specs in layers.items():
            if path not in modules:
                raise AdapterError(f"adapter '{name}' targets '{path}', which this model does not have")
            if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                raise AdapterError(f"adapter '{name}': layer '{path}' must list tuner settings (mappings)")
            for spec in specs:
                kind = spec.get("kind")
                if not isinstance(kind, str) or kind not in TUNERS:
                    raise AdapterError(f"adapter '{name}' uses an unknown tuner kind {kind!r} on '{path}'")
                settings = {k: v for k, v in spec.items() if k != "kind"}
                reason = TUNERS[kind].check(modules[path], settings)
                if reason:
                    raise AdapterError(f"adapter '{name}' does not fit layer '{path}': {kind} {reason}")

    def _track(self, path, owner, tuners):
        if path not in self._owners:
            self._owners[path] = owner
            self._slots[path] = {}
            self._hooks.append(owner.register_forward_pre_hook(self._make_pre_hook(path)))
            self._hooks.append(owner.register_forward_hook(self._make_post_hook(path), always_call=True))
        for tuner in tuners:
            for pname in tuner.touches:
                if pname not in self._slots[path]:
                    self._slots[path][pname] = _Slot(owner._parameters.get(pname))

    def remove(self, name: str) -> None:
        if name not in self.adapters:
            raise AdapterError(f"no adapter named '{name}' is attached")
        if self.active == name:
            self.activate(None)
        del self.adapters[name]
        del self.configs[name]
        self._drop_kept(name)
        self.__dict__.get("_param_cache", {}).pop(name, None)
        self.__dict__.pop("_plan_cache", None)

    # ---- switching ---------------------------------------------------------------------------
    def activate(self, name: Optional[str]) -> None:
        """Make `name` (or None = the plain base) the adapter the model runs; O(1) when unmerged."""
        if name is not None and name not in self.adapters:
            known = ", ".join(self.adapters) or "none"
            raise AdapterError(f"no adapter named '{name}' is attached (attached: {known})")
        previous, self.active = self.active, name
        # Only the active adapter's tensors require grad (DDP rejects unused ones); touching just
        # the two adapters that change keeps a switch O(size of those two).
        for other in {previous, name} - {None}:
            for p in self._params_of(other):
                p.requires_grad_(other == name)
        if self.merged:
            self._install_merged(self._paths_of(previous) | self._paths_of(name) | self._blended)
            self._blended = set()

    @torch.no_grad()
    def blend(self, weights: Mapping[str, float]) -> None:
        """Merged tensors base + strength * sum(w * delta) over several adapters, for one image
        (peft's weighted "linear" adapter merging; issue 14's blend). The next `activate` undoes it."""
        if not self.merged:
            raise AdapterError("a blend of adapters needs merged mode (merge_adapter first)")
        for name in weights:
            if name not in self.adapters:
                raise AdapterError(f"no adapter named '{name}' is attached (attached: {', '.join(self.adapters)})")
        self.activate(None)
        paths = set().union(*(self._paths_of(n) for n in weights))
        for path in paths:
            bases = {pname: slot.base for pname, slot in self._slots[path].items()}
            for pname, slot in self._slots[path].items():
                total = None
                for name, w in weights.items():
                    for tuner in self._tuners(name, path):
                        delta = tuner.deltas(bases).get(pname) if pname in tuner.touches else None
                        if delta is not None and w != 0:
                            total = delta * w if total is None else total.add_(delta, alpha=w)
                if total is None:
                    continue
                if slot.merged is None:
                    slot.merged = nn.Parameter(torch.empty_like(slot.base if slot.base is not None else total),
                                               requires_grad=False)
                if slot.base is None:
                    torch.mul(total, self.strength, out=slot.merged.data)
                else:
                    torch.add(slot.base, total.to(slot.base.dtype), alpha=self.strength, out=slot.merged.data)
                self._owners[path]._parameters[pname] = slot.merged
        self._blended = paths
        self.generation += 1

    def set_strength(self, strength: float) -> None:
        """Blend base and adapter: effective = base + strength * delta (like Real-ESRGAN's -dn)."""
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise AdapterError(f"strength must be between 0 and 1, got {strength}")
        self.strength = strength
        self._drop_kept()
        if self.merged:
            self._install_merged()

    def merge(self) -> None:
        """Precompute the active adapter's tensors for inference (training needs unmerged mode)."""
        self.merged = True
        self._drop_kept()  # the adapters may have trained since
        self._install_merged()

    def keep_merged(self, keep: bool) -> None:
        """Trade memory for swap time: keep each adapter's merged tensors after its first merge, so
        a later swap back re-points them (~0.1 ms) instead of rewriting W + s*B*A, which is bound by
        memory traffic (~30 ms on NAFNet-w32). Costs the touched tensors' size per adapter."""
        self._keep = bool(keep)
        if not self._keep:
            self._drop_kept()

    def _drop_kept(self, name=None):
        for slots in self._slots.values():
            for slot in slots.values():
                if name is None:
                    slot.kept.clear()
                else:
                    slot.kept.pop(name, None)

    def unmerge(self) -> None:
        """Put every base tensor back (the very objects: exact)."""
        self.merged = False
        self.generation += 1
        for path, slots in self._slots.items():
            for pname, slot in slots.items():
                self._owners[path]._parameters[pname] = slot.base

    def _params_of(self, name):
        """The adapter's parameters, listed once (walking the module tree costs ms on big nets)."""
        cache = self.__dict__.setdefault("_param_cache", {})
        if name not in cache:
            cache[name] = list(self.adapters[name].parameters())
        return cache[name]

    def _paths_of(self, name):
        """Owner paths an adapter touches (None: none)."""
        if name is None or name not in self.adapters:
            return set()
        return {key.replace("__", ".") for key in self.adapters[name].keys()}

    @torch.no_grad()
    def _install_merged(self, paths=None):
        """Install merged tensors of the active adapter on `paths` (default: every tracked owner),
        each written straight into its slot's buffer by the tuner (one pass, no temporaries); the
        same arithmetic every time, so A -> B -> A gives A's tensors bit for bit."""
        self.generation += 1
        written = set()
        for owner, pname, slot, bases, touching in self._merge_plan(self.active):
            if self._keep and self.active in slot.kept:  # made before: re-point
                buf = slot.kept[self.active]
            else:  # write W + s * delta into the shared buffer, or a new kept one
                buf = None if self._keep else slot.merged
                if buf is None:
                    like = slot.base if slot.base is not None else touching[0].deltas(bases)[pname]
                    buf = nn.Parameter(torch.empty_like(like), requires_grad=False)
                touching[0].write_merged(buf.data, pname, bases, self.strength)
                for tuner in touching[1:]:  # rare: two tuners on one tensor
                    buf.data.add_(tuner.deltas(bases)[pname].to(buf.dtype), alpha=self.strength)
                if self._keep:
                    slot.kept[self.active] = buf
                else:
                    slot.merged = buf
            owner._parameters[pname] = buf
            written.add(id(slot))
        for path in self._slots if paths is None else paths:
            for pname, slot in self._slots[path].items():
                if id(slot) not in written:
                    self._owners[path]._parameters[pname] = slot.base

    def _merge_plan(self, name):
        """[(owner, param name, slot, base tensors, tuners)] an adapter merges, listed once (a swap
        then spends its time writing tensors, not walking modules)."""
        if name is None:
            return []
        cache = self.__dict__.setdefault("_plan_cache", {})
        if name not in cache:
            plan = []
            for path in sorted(self._paths_of(name)):
                tuners, slots = self._tuners(name, path), self._slots[path]
                bases = {pname: slot.base for pname, slot in slots.items()}
                for pname, slot in slots.items():
                    # a tensor the base lacks (bias=False) is merged only where a tuner makes it
                    touching = [t for t in tuners if pname in t.touches
                                and (slot.base is not None or pname in t.deltas(bases))]
                    if touching:
                        plan.append((self._owners[path], pname, slot, bases, touching))
            cache[name] = plan
        return cache[name]

    # ---- forward mechanics ---------------------------------------------------------------------
    def _tuners(self, name, path):
        group = self.adapters[name]
        key = _escape(path)
        return group[key] if key in group else ()

    def _deltas(self, path, tuners):
        """{param name: summed delta of `tuners`} for one owner."""
        base = {pname: slot.base for pname, slot in self._slots[path].items()}
        total = {}
        for tuner in tuners:
            for pname, delta in tuner.deltas(base).items():
                total[pname] = delta if pname not in total else total[pname] + delta
        return total

    def _effective(self, path, tuners):
        base = {pname: slot.base for pname, slot in self._slots[path].items()}
        total = self._deltas(path, tuners)
        out = {}
        for pname, delta in total.items():
            b = base[pname]
            scaled = delta if self.strength == 1.0 else delta * self.strength
            out[pname] = scaled if b is None else b + scaled
        return out

    def _make_pre_hook(self, path):
        return _HubHook(self, "_pre_hook", path)

    def _make_post_hook(self, path):
        return _HubHook(self, "_post_hook", path)

    def _pre_hook(self, path, module):
        if self.merged or self.active is None:
            return
        tuners = self._tuners(self.active, path)
        if tuners:
            module._parameters.update(self._effective(path, tuners))

    def _post_hook(self, path, module):
        if not self.merged:
            for pname, slot in self._slots[path].items():
                module._parameters[pname] = slot.base

    def _apply(self, fn, recurse=True):
        """Device / dtype / memory-format moves also reach the tensors kept aside while merged: the
        bases, and the merged buffers of adapters not active now (a later swap writes into them)."""
        super()._apply(fn, recurse)
        if self.merged:
            with torch.no_grad():
                for slots in self._slots.values():
                    for slot in slots.values():
                        for t in (slot.base, slot.merged, *slot.kept.values()):
                            if t is not None:
                                t.data = fn(t)
        return self

    # ---- queries -------------------------------------------------------------------------------
    def trainable_parameters(self, name: Optional[str] = None) -> List[nn.Parameter]:
        name = name or self.active
        if name not in self.adapters:
            raise AdapterError(f"no adapter named '{name}' is attached")
        return list(self.adapters[name].parameters())

    def state_dict_of(self, name: str) -> Dict[str, torch.Tensor]:
        """The adapter's tensors under peft-style file keys: `<module path>.<tuner tensor name>`."""
        out = {}
        for key, tuners in self.adapters[name].items():
            path = key.replace("__", ".")
            for tuner in tuners:
                for tname, t in tuner.state_dict().items():
                    out[f"{path}.{tname}"] = t.detach().clone()
        return out

    def load_state_of(self, name: str, tensors: Mapping[str, torch.Tensor], source: object) -> None:
        own = self.state_dict_of(name)
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        bad = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
        if missing or unexpected or bad:
            what = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                    else f"shape of {bad[0]} is {list(tensors[bad[0]].shape)}, expected {list(own[bad[0]].shape)}")
            raise AdapterError(f"adapter file '{source}' does not match its config: {what}")
        with torch.no_grad():
            for key, tuners in self.adapters[name].items():
                path = key.replace("__", ".")
                for tuner in tuners:
                    for tname, t in tuner.state_dict(keep_vars=True).items():
                        t.copy_(tensors[f"{path}.{tname}"])
        self._drop_kept(name)
        if self.merged and self.active == name:
            self._install_merged()


def base_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The plain network's state dict (what the base checkpoint holds), whatever is attached."""
    hub = getattr(model, "colora_adapters", None)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("colora_adapters.")}
    if hub is not None:
        for path, slots in hub._slots.items():
            for pname, slot in slots.items():
                key = f"{path}.{pname}" if path else pname
                if slot.base is None:
                    state.pop(key, None)
                else:
                    state[key] = slot.base.detach()
    return state


def count_base(model: nn.Module) -> int:
    """Floating-point parameters of the base: what trainable percentages are of."""
    return sum(v.numel() for v in base_state_dict(model).values() if v.is_floating_point())
