"""`colora estimator train | run`: the command-line layer over colora.inference.estimator."""
import json
import logging

from colora.errors import ColoraError

log = logging.getLogger("colora")


def cmd_train(args):
    import torch

    from colora.inference.estimator import TILE, load_estimator, save_estimator, train_estimator

    if min(args.iters, args.batch, args.width, args.tiles) < 1:
        raise ColoraError("--iters, --batch, --width and --tiles must be at least 1")
    if args.region < TILE:
        raise ColoraError(f"--region must be at least {TILE} (one tile), got {args.region}")
    if args.faint_db is not None and not 0 < args.faint_db < 100:
        raise ColoraError(f"--faint-db is a PSNR in dB between 0 and 100 (e.g. 40), got {args.faint_db}")
    init = load_estimator(args.init) if args.init else None  # a bad file fails here, before any training
    if args.threads:
        torch.set_num_threads(args.threads)
    model = train_estimator(args.dataroot, iters=args.iters, batch=args.batch, seed=args.seed, width=args.width,
                            tile_max=args.tile_max, log=log.info, tiles=args.tiles, region=args.region,
                            faint_db=args.faint_db, init=init, stats=args.stats)
    save_estimator(model, args.output, info={"dataroot": args.dataroot, "iters": args.iters, "batch": args.batch,
                                             "seed": args.seed, "width": model.width, "tiles": args.tiles,
                                             "region": args.region, "tile_max": args.tile_max,
                                             "faint_db": args.faint_db, "init": args.init,
                                             "stats": model.stats})
    log.info(f"estimator saved to {args.output}")


def cmd_run(args):
    from colora.data.imagefolder import list_images
    from colora.imageio import read_image
    from colora.inference.estimator import LABELS, estimate, load_estimator

    model = load_estimator(args.model)
    results, failed = {}, 0
    for path in list_images(args.input, "input") if not args.input.is_file() else [args.input]:
        try:
            est = estimate(model, read_image(path).pixels, args.max_tiles)
        except ColoraError as exc:
            failed += 1
            print(f"{path}: failed: {exc}")
            continue
        results[str(path)] = est
        found = [f"{k} {est[k]:.2f}" for k in LABELS if est[k] >= 0.5] or ["nothing above 0.5"]
        print(f"{path}: {', '.join(found)}; severity {est['severity']:.1f} dB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


def add_estimator(sub):
    from pathlib import Path

    p = sub.add_parser("estimator", help="train or run the degradation estimator (what is wrong with a photo)")
    cmds = p.add_subparsers(dest="estimator_command", metavar="ACTION", required=True)
    t = cmds.add_parser("train", help="train an estimator on synthetic pairs whose recipes are the labels")
    t.add_argument("-o", "--output", required=True, type=Path, help="estimator file (.safetensors)")
    t.add_argument("--dataroot", help="folder of clean photos (default: the photos bundled with scikit-image)")
    t.add_argument("--iters", type=int, default=2500)
    t.add_argument("--width", type=int, default=32, help="channels of the first stage")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--tiles", type=int, default=1, help="96² tiles per training view, their features averaged "
                   "as `run` averages a photo's tiles")
    t.add_argument("--tile-max", action="store_true", help="pool a photo's tiles by their max as well as their "
                   "mean (measured no better on validation yet; the shipped estimator is mean-only)")
    t.add_argument("--stats", action="store_true", help="the head also reads classical no-reference image "
                   "statistics (noise sigma, edge width, dark channel, streak coherence); with --init, added to it")
    t.add_argument("--region", type=int, default=256, help="side of the degraded training views (a photo's scale)")
    t.add_argument("--faint-db", type=float, default=None, help="label a degradation present only where it "
                   "changed the view visibly (PSNR of that step below this, e.g. 40); default: every sampled one")
    t.add_argument("--init", help="go on training this estimator file (e.g. the shipped one) instead of a new one; "
                   "its width and pooling are kept")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    t.set_defaults(func=cmd_train)
    r = cmds.add_parser("run", help="print each image's degradation probabilities and severity")
    r.add_argument("-i", "--input", required=True, type=Path, help="an image or a folder")
    r.add_argument("--model", help="estimator file (default: the shipped one)")
    r.add_argument("--max-tiles", type=int, default=16, help="96² tiles averaged per image")
    r.add_argument("--json", type=Path, help="also write the results as JSON")
    r.set_defaults(func=cmd_run)
