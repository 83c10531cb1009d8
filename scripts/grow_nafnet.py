"""Grow a trained NAFNet into a deeper one that computes exactly the same function.

    python scripts/grow_nafnet.py BASE OUT --enc 2 2 2 4 --middle 4 [--dec 1 1 1 1]

Issue 13 allows the default up to 8x the first base's MACs per pixel; pre-training a deeper
network from scratch would throw away the hours the shipped base took. A NAFBlock whose residual
scales beta and gamma are zero (their initial value, Fig. 3c) is the identity, so the blocks of
BASE keep their places (block j of a level stays block j) and the new ones are appended after them
with those scales at zero: the grown network's output equals BASE's, and pre-training goes on from
there (`colora pretrain ... --set path.pretrain_network_g=OUT` with the same depths in network_g).
Width and the number of levels stay; only block counts grow. Our choice, in the spirit of Net2Net
(Chen et al., ICLR 2016).
"""
import argparse
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colora.archs import build_arch, full_config  # noqa: E402
from colora.checkpoint import checkpoint_network_g, load_state_dict, read_metadata, save_checkpoint  # noqa: E402
from colora.errors import ColoraError  # noqa: E402


def grow(state, network_g, enc=None, middle=None, dec=None, seed=0):
    """(state dict, network_g) of the grown NAFNet; new blocks initialised with beta = gamma = 0."""
    if network_g.get("type") != "NAFNet":
        raise ColoraError(f"only NAFNet can be grown, this checkpoint is {network_g.get('type')}")
    network_g = full_config(network_g)
    new = dict(network_g)
    for key, value in (("enc_blk_nums", enc), ("dec_blk_nums", dec)):
        if value is not None:
            if len(value) != len(network_g[key]) or any(n < o for n, o in zip(value, network_g[key])):
                raise ColoraError(f"{key} must keep {len(network_g[key])} levels and grow, "
                                  f"not shrink: {network_g[key]} -> {list(value)}")
            new[key] = list(value)
    if middle is not None:
        if middle < network_g["middle_blk_num"]:
            raise ColoraError(f"middle_blk_num can only grow: {network_g['middle_blk_num']} -> {middle}")
        new["middle_blk_num"] = int(middle)
    torch.manual_seed(seed)
    model = build_arch(new)
    grown = model.state_dict()
    for key, value in state.items():
        if key not in grown or grown[key].shape != value.shape:
            raise ColoraError(f"tensor {key} of the checkpoint has no place in the grown network")
        grown[key] = value.to(grown[key].dtype)
    for key in grown:
        if key not in state and re.search(r"\.(beta|gamma)$", key):
            grown[key] = torch.zeros_like(grown[key])  # the new block starts as the identity
    model.load_state_dict(grown, strict=True)
    return model.state_dict(), new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--enc", type=int, nargs="+", help="blocks per encoder level")
    ap.add_argument("--middle", type=int, help="middle blocks")
    ap.add_argument("--dec", type=int, nargs="+", help="blocks per decoder level")
    a = ap.parse_args(argv)
    try:
        if Path(a.out).exists():
            raise ColoraError(f"{a.out} exists; choose a new file name")
        meta, state = read_metadata(a.base), load_state_dict(a.base)
        state, network_g = grow(state, checkpoint_network_g(a.base, state, meta), a.enc, a.middle, a.dec)
        extra = {k: meta[k] for k in ("train_size",) if k in meta}
        save_checkpoint(a.out, state, network_g=network_g,
                        extra_metadata={**extra, "grown_from": str(a.base), "made_by": "scripts/grow_nafnet.py"})
    except ColoraError as exc:
        sys.exit(f"error: {exc}")
    print(f"{a.out}: {network_g}")


if __name__ == "__main__":
    main()
