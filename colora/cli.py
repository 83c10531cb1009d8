"""The `colora` command: argparse subcommands, each a thin call into the Python API.

User errors (`ColoraError`) print one line and exit 2 -- never a traceback.
"""
import argparse
import json
import logging
import sys

from colora import __version__
from colora.errors import ColoraError


def _add_opt_args(p):
    p.add_argument("-opt", "--opt", required=True, help="options YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set train.total_iter=100 (repeatable)")


def cmd_info(args):
    from colora.summary import describe

    info = describe(args.path, size=args.size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    net = dict(info["network_g"])
    print(f"{info['kind']}: {info['path']}")
    if info.get("name"):
        print(f"  name:           {info['name']}")
    print(f"  architecture:   {net.pop('type')}({', '.join(f'{k}={v}' for k, v in net.items())})")
    print(f"  official match: {info['official_config'] or 'none (a custom configuration)'}")
    print(f"  parameters:     {info['params']:,}")
    print(f"  MACs at {args.size}x{args.size}: {info[f'gmacs_at_{args.size}']} G")
    if info["kind"] == "checkpoint":
        print(f"  tensors:        {info['tensors']} (EMA weights: {'yes' if info['has_ema'] else 'no'})")
    return 0


# ---- degrade ---------------------------------------------------------------------------------
def cmd_degrade(args):
    from colora.degradations.prod import make_pairs

    names = make_pairs(args.output, clean_dir=args.input, preset=args.preset, seed=args.seed, n=args.num,
                       size=args.size, grid=args.grid)
    print(f"wrote {len(names)} pairs to {args.output} (lq/, gt/, recipes/)"
          + (f" and a contact sheet to {args.grid}" if args.grid else ""))
    return 0


def _add_degrade(sub):
    p = sub.add_parser("degrade", help="write synthetic LQ/GT pairs (and their recipes) from clean images")
    p.add_argument("-i", "--input", default=None, help="folder of clean images (default: the bundled photos)")
    p.add_argument("-o", "--output", required=True, help="output folder: lq/, gt/ and recipes/ go there")
    p.add_argument("--preset", default="prod", metavar="PRESET",
                   help="prod, fixed, single (PROD modes) or a task: rain, raindrop, rain_raindrop, "
                        "noise, blur, haze, lowlight (default prod)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-n", "--num", type=int, default=8, help="number of pairs (default 8)")
    p.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    p.add_argument("--grid", default=None, metavar="FILE.png",
                   help="also write a contact sheet: per pair the clean crop, then the image after each op")
    p.set_defaults(func=cmd_degrade)
# ---- end degrade -----------------------------------------------------------------------------


def cmd_pretrain(args):
    from colora.options import load_options
    from colora.train import pretrain

    opts = load_options(args.opt, args.set)
    summary = pretrain(opts, auto_resume=args.auto_resume)
    if summary.get("rank", 0) == 0:
        state = "stopped" if summary["interrupted"] else "finished"
        best = f"; best validation PSNR {summary['best_psnr']:.2f} dB at {summary['best_iter']}" \
            if summary["best_psnr"] > float("-inf") else ""
        print(f"{state} at iteration {summary['iter']}{best}; outputs in {summary['experiment']}")
    return 130 if summary["interrupted"] else 0


def _add_pretrain(sub):
    p = sub.add_parser("pretrain", aliases=["train"],
                       help="pre-train network_g (PROD) from an options YAML; works under torchrun")
    _add_opt_args(p)
    p.add_argument("--auto_resume", "--auto-resume", action="store_true",
                   help="continue from the newest training state of this experiment")
    p.set_defaults(func=cmd_pretrain)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="colora", description="PROD pre-training and contribution-based LoRA for image restoration.")
    parser.add_argument("--version", action="version", version=f"colora {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="describe an options YAML or a checkpoint")
    p.add_argument("path", help="options .yml or checkpoint (.safetensors / .pth)")
    p.add_argument("--size", type=int, default=256, help="input side for the MAC count (default 256)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    _add_pretrain(sub)

    _add_degrade(sub)
    return parser


class _Formatter(logging.Formatter):
    """Plain messages; warnings and errors say so in front."""

    def format(self, record):
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler], force=True)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except ColoraError as exc:
        print(f"colora: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("colora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
