"""`colora restore` and the model flags it shares with `eval` and `export` (base, adapters,
strength, tiling, precision, backend, limits): the command-line face of colora.inference.restorer."""
import sys

from colora.errors import ColoraError, one_line


def check_ranges(args):
    """Every number of the model flags in its domain, before anything is loaded (nan fails too)."""
    import math

    for flag, value, lo, hi in (("--strength", args.strength, 0.0, 1.0), ("--threads", args.threads, 0, 4096),
                                ("-t/--tile", args.tile, 0, 1 << 20), ("--tile-pad", args.tile_pad, 0, 4096),
                                ("--max-pixels", args.max_pixels, 1e-6, 1e6)):
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ColoraError(f"{flag} must be between {lo:g} and {hi:g}, got {value}")


def restorer_from_args(args):
    from colora.inference.memory import parse_budget
    from colora.inference.restorer import Restorer

    check_ranges(args)
    budget = parse_budget(getattr(args, "max_memory", None))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    precision = "bf16" if args.bf16 or args.force_bf16 else args.precision  # colora.precision says if not native
    return Restorer.from_files(args.model, args.adapter or (), adapter_dir=args.adapter_dir,
                               strength=args.strength, tile=args.tile, tile_pad=args.tile_pad, precision=precision,
                               force_precision=args.force_bf16, compile=args.compile, backend=args.backend,
                               max_pixels=int(args.max_pixels * 1e6), max_memory=budget, force=args.force,
                               refine=args.refine, tta=args.tta, **auto_kwargs(args))


def auto_kwargs(args):
    """The --adapter auto settings Restorer.from_files takes (absent on commands without them)."""
    if not hasattr(args, "auto_threshold"):
        return {}
    return {"estimator": args.estimator, "auto_threshold": args.auto_threshold, "auto_mixture": args.auto_mixture}


def check_explain(args):
    """--explain FILE: a file this run would replace is refused before any work (unless --overwrite)."""
    from pathlib import Path

    if args.explain is None:
        return None
    path = Path(args.explain)
    if args.adapter != ["auto"]:
        raise ColoraError("--explain records what --adapter auto chose; add --adapter auto")
    if path.is_dir() or (path.exists() and not args.overwrite):
        raise ColoraError(f"--explain '{path}' exists; pick another file or pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ColoraError(f"--explain '{path}': folder '{path.parent}' does not exist")
    return path


def cmd_restore(args):
    from colora.inference.shard import Shard

    from tqdm import tqdm

    from colora.inference.auto import summary
    from colora.inference.memory import keep_freed_memory

    explain = check_explain(args)
    keep_freed_memory()  # this process only restores: reuse freed activations rather than re-mmap them
    shard = Shard.from_env()  # under torchrun: this rank's share of the files
    restorer = restorer_from_args(args)
    counts = {"restored": 0, "skipped": 0, "failed": 0}
    records = []
    for result in restorer.restore_paths(args.input, args.output, suffix=args.suffix, ext=args.ext,
                                         recursive=args.recursive, skip_existing=args.skip_existing,
                                         overwrite=args.overwrite, progress=not args.quiet and shard.is_main,
                                         shard=(shard.rank, shard.world_size), io_threads=not args.no_io_threads):
        counts[result.status] += 1
        if result.choice is not None and not args.quiet:
            tqdm.write(f"{result.input}: {summary(result.choice)}")
        records.append({"input": str(result.input), "output": str(result.output) if result.output else None,
                        "status": result.status, "reason": result.reason, "choice": result.choice})
        if result.status != "restored" or result.reason:
            status = "restored with a warning" if result.status == "restored" else result.status
            tqdm.write(one_line(f"{status}: {result.input}: {result.reason}"), file=sys.stderr)
    if explain is not None:
        write_explain(explain, restorer, records, shard)
    counts = shard.total(counts)
    shard.close()
    if shard.is_main:
        ranks = f" ({shard.world_size} ranks)" if shard.world_size > 1 else ""
        print(f"{counts['restored']} restored, {counts['skipped']} skipped, {counts['failed']} failed "
              f"-> {args.output}{ranks}")
    return 1 if counts["failed"] else 0


def write_explain(path, restorer, records, shard):
    """--explain: every image's estimate and choice as JSON (one file per rank under torchrun)."""
    import json
    from pathlib import Path

    from colora.fileio import atomic_write_text

    if shard.world_size > 1:
        path = Path(path).with_name(f"{Path(path).stem}.rank{shard.rank}{Path(path).suffix}")
    auto = restorer.auto
    doc = {"threshold": auto.threshold, "mixture": auto.mixture, "adapters": auto.available, "images": records}
    atomic_write_text(path, json.dumps(doc, indent=1))


def add_network_args(p):
    """The base and adapters to run (restore, eval) or to merge (export)."""
    p.add_argument("--model", default=None, help="base checkpoint (.safetensors or BasicSR .pth; default: the shipped base)")
    p.add_argument("--adapter", action="append", metavar="NAME|DIR|auto",
                   help="adapter folder or name; repeat to apply several in sequence (e.g. rain, then haze); "
                        "'auto': pick per image among the adapters of --adapter-dir (default: the shipped ones)")
    p.add_argument("--adapter-dir", default=None, help="where adapter names are looked up (default: next to --model)")
    p.add_argument("--strength", type=float, default=1.0, help="blend base (0) .. adapter (1); default 1")
    p.add_argument("--force", action="store_true", help="apply adapters made for another base anyway")


def add_model_args(p):
    add_network_args(p)
    p.add_argument("-t", "--tile", type=int, default=0, help="tile size in pixels; 0 = whole image")
    p.add_argument("--tile-pad", type=int, default=32, help="overlap of neighbouring tiles (default 32)")
    p.add_argument("--refine", default="auto", choices=["auto", "off"],
                   help="auto (default): after a haze adapter, a guided filter holds its output to a local "
                        "affine map of the input (removes grid artefacts); off: the network's output as is")
    p.add_argument("--tta", action="store_true",
                   help="self-ensemble: average the outputs for the 8 flips/rotations of each tile (8x the time)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 only where the CPU/GPU has it natively and it measures faster")
    p.add_argument("--bf16", action="store_true", help="= --precision bf16 (fp32 with a warning where not native)")
    p.add_argument("--force-bf16", action="store_true", help="bf16 even where it is emulated (~10x slower)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="onnxruntime: run --model FILE.onnx (from colora export) with ONNX Runtime")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (pays off on long folder jobs with a fixed -t)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--max-pixels", type=float, default=200, help="skip images over this many megapixels (200)")
    p.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help="memory budget per photo; larger photos are tiled to fit, or refused before "
                        "decoding (default: half the RAM)")


def add_restore(sub):
    p = sub.add_parser("restore", help="restore an image, a folder or a glob of images")
    p.add_argument("-i", "--input", required=True, help="image file, folder or glob pattern")
    p.add_argument("-o", "--output", required=True, help="output folder")
    add_model_args(p)
    p.add_argument("--suffix", default="", help="appended to output names (default: none, same name)")
    p.add_argument("--ext", default="auto", choices=["auto", "png", "jpg", "webp"], help="output format")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders, keeping the tree")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that exist in -o (an input of the run is never replaced)")
    p.add_argument("--no-io-threads", action="store_true",
                   help="decode and encode in the restoring thread (default: the next photo is decoded "
                        "and the last one encoded while the network runs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--estimator", default=None, metavar="FILE",
                   help="--adapter auto: degradation estimator (default: the shipped one)")
    p.add_argument("--auto-threshold", type=float, default=0.5,
                   help="--adapter auto: probability from which a degradation counts as present (0.5)")
    p.add_argument("--auto-mixture", default="chain", choices=["chain", "blend", "recheck"],
                   help="--adapter auto, several degradations: run their adapters in turn (chain), "
                        "merge their weighted sum once (blend), or run one and look again at its output (recheck)")
    p.add_argument("--explain", default=None, metavar="FILE.json",
                   help="--adapter auto: write what was detected and applied per image")
    p.set_defaults(func=cmd_restore)
