"""The `colora` command: argparse subcommands, each a thin call into the Python API.

User errors (`ColoraError`) print one line and exit 2 -- never a traceback.
"""
import argparse
import json
import logging
import sys

from colora import __version__
from colora.errors import ColoraError, one_line
from colora.inference.restore_cli import add_model_args, add_network_args, add_restore, check_ranges, restorer_from_args


def _add_opt_args(p, kind):
    """`-opt FILE` or `--preset NAME` (a YAML shipped in colora/presets/); both end up in args.opt."""
    from colora.presets import list_presets, preset_path

    def preset(name):
        try:
            return str(preset_path(kind, name))
        except ColoraError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-opt", "--opt", help="options YAML file")
    source.add_argument("--preset", dest="opt", type=preset, metavar="NAME",
                        help=f"a shipped preset: {', '.join(list_presets(kind))}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set train.total_iter=100 (repeatable)")


def cmd_info(args):
    from colora.summary import describe

    info = describe(args.path, size=args.size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info["kind"] == "adapter":
        arch = info["base_arch"] if isinstance(info["base_arch"], dict) else {}
        print(f"adapter: {info['path']}")
        print(f"  name / task:    {info['name']} / {info['task'] or 'not recorded'}")
        print(f"  method:         {info['method']} on {info['layers']} layers, {info['params']:,} parameters"
              + (f" ({info['trainable_percent']:.2f} % of the base)" if info["trainable_percent"] else ""))
        print(f"  base:           {arch.get('type', 'not recorded')} (sha256 {str(info['base_sha256'])[:16]}...)")
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
    from colora.data.pairs import make_pairs

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
    from colora.training.trainer import pretrain

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
    _add_opt_args(p, "pretrain")
    p.add_argument("--auto_resume", "--auto-resume", action="store_true",
                   help="continue from the newest training state of this experiment")
    p.set_defaults(func=cmd_pretrain)


def cmd_export(args):
    from colora.inference.export import export

    check_ranges(args)
    done = export(args.output, args.model, args.adapter or (), adapter_dir=args.adapter_dir,
                  strength=args.strength, force=args.force)
    check = f"; ONNX Runtime vs torch on a real photo: max |diff| {done['max_abs_diff']:.1e}" if "max_abs_diff" in done else ""
    print(f"wrote {done['path']} ({done['networks']} network(s) merged){check}")
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="write the merged network as .safetensors / .pth (official keys) or .onnx")
    p.add_argument("-o", "--output", required=True, help="FILE.safetensors, FILE.pth or FILE.onnx")
    add_network_args(p)  # several adapters (a chain) export only to .onnx
    p.set_defaults(func=cmd_export, threads=0, tile=0, tile_pad=0, max_pixels=1)


def _benchmark(args):
    """The split `colora eval --dataset` scores, read before any model is loaded."""
    from colora.data.real import BENCHMARKS, find_benchmark
    from colora.data.build import build_dataset

    if args.lq or args.gt:
        raise ColoraError("give either --lq and --gt folders or --dataset and --dataroot, not both")
    cls = find_benchmark(args.dataset)
    if cls is None:
        raise ColoraError(f"--dataset '{args.dataset}' is not a benchmark; choose one of: {', '.join(BENCHMARKS)}")
    if not args.dataroot:
        raise ColoraError(f"--dataset {cls.NAME} needs --dataroot, the folder its download was extracted to")
    return build_dataset({"type": cls.NAME, "dataroot": args.dataroot, "split": args.split,
                          "subset": args.subset}, phase="val")


def cmd_eval(args):
    from colora.inference.evaluate import evaluate, evaluate_benchmark, write_csv, write_grid

    if args.dataset:
        dataset = _benchmark(args)
        p = dataset.PROTOCOL
        print(f"{dataset.label()}: {len(dataset)} images; PSNR/SSIM on {p.describe()} ({p.source})")
        rows, mean = evaluate_benchmark(restorer_from_args(args), dataset, output=args.save)
    elif args.lq and args.gt:
        rows, mean = evaluate(restorer_from_args(args), args.lq, args.gt, crop_border=args.crop_border,
                              test_y_channel=args.test_y_channel, output=args.save)
    else:
        raise ColoraError("colora eval needs --lq and --gt folders, or --dataset and --dataroot")
    print(f"{'image':24s} {'PSNR in':>8s} {'PSNR out':>9s} {'SSIM in':>8s} {'SSIM out':>9s}")
    for r in rows + [dict(mean, name="mean")]:
        print(f"{r['name'][:24]:24s} {r['psnr_in']:8.2f} {r['psnr_out']:9.2f} {r['ssim_in']:8.4f} {r['ssim_out']:9.4f}")
    if args.csv:
        write_csv(args.csv, rows, mean)
    if args.grid:
        write_grid(args.grid, rows)
    return 0


def _add_eval(sub):
    p = sub.add_parser("eval", help="restore LQ images (folders or a benchmark split) and report PSNR/SSIM")
    p.add_argument("--lq", help="folder of degraded images")
    p.add_argument("--gt", help="folder of clean images (matched by file name stem)")
    p.add_argument("--dataset", metavar="NAME", help="a benchmark as downloaded (SIDD, GoPro, RealBlur_J, "
                   "RainDS_real, NH-HAZE, ...), scored as its papers do (README: evaluation protocols)")
    p.add_argument("--dataroot", help="the folder the --dataset download was extracted to")
    p.add_argument("--split", help="the benchmark split (default: its test or validation split)")
    p.add_argument("--subset", help="the benchmark subset (RainDS: rainstreak, raindrop, rainstreak_raindrop)")
    add_model_args(p)
    p.add_argument("--crop-border", type=int, default=0, help="pixels cropped off each border (folders)")
    p.add_argument("--test-y-channel", action="store_true", help="PSNR/SSIM on the BT.601 Y channel (folders)")
    p.add_argument("--csv", help="write per-image and mean metrics to this CSV file")
    p.add_argument("--grid", help="write an LQ | restored | GT comparison PNG")
    p.add_argument("--save", help="also write the restored images to this folder")
    p.set_defaults(func=cmd_eval)


def cmd_finetune(args):
    from colora.tuning.finetune import finetune
    from colora.options import load_options

    opts = load_options(args.opt, args.set)
    s = finetune(opts, auto_resume=args.auto_resume)
    if s.get("interrupted"):
        return 130
    if s.get("rank", 0) == 0:
        print(f"adapter: {s['adapter']} ({s['trainable_percent']:.2f} % trainable); validation PSNR "
              f"{s['base'].get('psnr', float('nan')):.2f} dB (base) -> {s['adapted'].get('psnr', float('nan')):.2f} dB")
    return 0


def cmd_faig(args):
    from pathlib import Path

    from colora.tuning.finetune import load_base, run_faig, task_datasets
    from colora.options import load_options

    opts = load_options(args.opt, args.set)
    model, _ = load_base(opts)
    train, _ = task_datasets(opts)
    out = Path(args.output or Path(opts.path.experiments_root) / opts.name)
    rows = run_faig(opts, model, train, out, target_path=args.target)
    top = sorted(rows, key=lambda r: -r["score"])[:8]
    print("top layers by FAIG score:")
    for r in top:
        print(f"  {r['name']:36s} {r['part']:8s} {r['score']:.3e}")
    print(f"wrote {out / 'faig.json'} and {out / 'faig.png'}")
    return 0


def cmd_compare(args):
    from colora.tuning.compare import compare, markdown

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    pairs = [int(p) for p in args.pairs.split(",")] if args.pairs else [None]
    rows, folder = compare(args.opt, methods, pairs, args.set, match_budget=args.match_budget)
    print(markdown(rows))
    print(f"tables: {folder / 'compare.md'} and {folder / 'compare.csv'}")
    return 0


def _add_finetune(sub):
    from colora.adapters.registry import METHOD_NAMES

    p = sub.add_parser("finetune", help="fine-tune an adapter for a task (FAIG + CoLoRA by default)")
    _add_opt_args(p, "finetune")
    p.add_argument("--auto_resume", "--auto-resume", action="store_true")
    p.set_defaults(func=cmd_finetune)
    p = sub.add_parser("faig", help="FAIG layer contributions of a task (faig.json + faig.png)")
    _add_opt_args(p, "finetune")
    p.add_argument("--target", help="task-tuned checkpoint theta_t (default: a short full fine-tune)")
    p.add_argument("-o", "--output", help="folder for faig.json/png (default: experiments/<name>)")
    p.set_defaults(func=cmd_faig)
    p = sub.add_parser("compare", help="train several adapter methods on the same data and tabulate them")
    _add_opt_args(p, "finetune")
    p.add_argument("--methods", default=",".join(METHOD_NAMES))
    p.add_argument("--pairs", default="", help="comma-separated training pair counts, e.g. 16,128")
    p.add_argument("--match-budget", action="store_true",
                   help="train lora at the uniform rank that fills adapter.budget (row lora@budget)")
    p.set_defaults(func=cmd_compare)


def cmd_demo(args):
    from pathlib import Path

    from colora.demo import run_demo

    out = Path(args.output)
    rows, swap_ms = run_demo(out, model_path=args.model, adapter_dir=args.adapter_dir, size=args.size)
    wins = sum(r["adapter_psnr"] > r["base_psnr"] for r in rows)
    print(f"\nadapter beats the base alone on {wins}/{len(rows)} tasks; swap {swap_ms:.1f} ms")
    print(f"open {out / 'index.html'} in a browser (also {out / 'summary.md'}, grid_<task>.png, faig.png)")
    print("next: fine-tune an adapter on your own pairs:\n  colora finetune -opt colora/presets/finetune/noise.yml "
          "--set datasets.train.type=PairedFolderDataset --set datasets.train.dataroot_lq=my/lq "
          "--set datasets.train.dataroot_gt=my/gt")
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="restore held-out photos for six tasks with the shipped base and adapters")
    p.add_argument("-o", "--output", default="colora_demo", help="output folder (default colora_demo)")
    p.add_argument("--model", default=None, help="base checkpoint (default: the shipped one)")
    p.add_argument("--adapter-dir", default=None, help="folder of task adapters (default: the shipped ones)")
    p.add_argument("--size", type=int, default=192, help="crop size (default 192)")
    p.set_defaults(func=cmd_demo)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="colora", description="PROD pre-training and contribution-based LoRA for image restoration.")
    parser.add_argument("--version", action="version", version=f"colora {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="describe an options YAML or a checkpoint")
    p.add_argument("path", help="options .yml, checkpoint (.safetensors / .pth) or adapter folder")
    p.add_argument("--size", type=int, default=256, help="input side for the MAC count (default 256)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    _add_pretrain(sub)
    add_restore(sub)
    _add_export(sub)
    _add_eval(sub)
    _add_finetune(sub)
    _add_demo(sub)

    _add_degrade(sub)
    from colora.inference.estimator_cli import add_estimator

    add_estimator(sub)
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
        print(f"colora: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("colora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
