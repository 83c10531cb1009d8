"""Hostile inputs against the CLI (issue 15): how many ended cleanly, in a traceback, or lost a file.

    .venv/bin/python benchmarks/hostile.py [--fuzz 300]

Makes everything at run time (tests/hostile_inputs.py): fuzzed and mutated images, bombs of
compressed zero rows, tampered checkpoint headers and adapter folders, bad --set options and flags,
broken links. Each input runs through the CLI's main() in this process; "clean" means a one-line
error (exit 2) or its own line in a batch (exit 1), "traceback" an exception escaping main(), "files
lost" a byte changed outside the run's output folder. The bombs (and the header / adapter ones that
ask for gigabytes) run again in fresh interpreters whose peak RSS is measured.
"""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402
from tests import hostile_inputs as H  # noqa: E402

GB = 1 << 30
class Tally:
    def __init__(self):
        self.rows = {}

    def add(self, group, tried, clean, tracebacks, lost, restored=0):
        r = self.rows.setdefault(group, [0, 0, 0, 0, 0])
        for i, v in enumerate((tried, restored, clean, tracebacks, lost)):
            r[i] += v


def batch(t, world, name, src, out, n_inputs, *extra):
    """One `colora restore` over a folder of hostile files: every file must be restored or get its line."""
    before = H.snapshot(world, skip=[out])
    code, stdout, err, escaped = H.run(["restore", "--model", world / "tiny.safetensors", "-q", "--threads", "1",
                                        "-i", src, "-o", out, *extra])
    failed = sum(ln.startswith("failed: ") for ln in H.error_lines(err))
    counted = stdout.split()[0:6:2] if stdout else []
    whole = len(counted) == 3 and sum(map(int, counted)) == n_inputs and code in (0, 1)
    after = H.snapshot(world, skip=[out])
    lost = sum(1 for k, v in before.items() if after.get(k) != v)
    t.add(name, n_inputs, failed if whole and escaped is None else 0, int(escaped is not None or "Traceback" in err),
          lost, int(counted[0]) if whole else 0)


def one_liners(t, world, name, argvs):
    """Runs that must each end in one `colora: error:` line and exit 2."""
    for argv in argvs:
        before = H.snapshot(world, skip=[world / "out"])
        code, _, err, escaped = H.run(argv)
        lines = H.error_lines(err)
        clean = escaped is None and code == 2 and len(lines) == 1 and lines[0].startswith("colora: error: ")
        after = H.snapshot(world, skip=[world / "out"])
        lost = sum(1 for k, v in before.items() if after.get(k) != v)
        t.add(name, 1, int(clean), int(escaped is not None or "Traceback" in err), lost)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, default=300, help="fuzzed image files (default 300)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        ckpt = H.tiny_checkpoint(w / "tiny.safetensors")
        adapter = H.tiny_adapter(ckpt, w / "adapters" / "tiny")
        (w / "good").mkdir()
        (w / "good" / "photo.png").write_bytes(H.encoded(".png"))
        restore = ["restore", "--model", ckpt, "-q", "--threads", "1", "-i", w / "good", "-o", w / "out"]

        H.fuzzed_images(w / "fuzz", args.fuzz, seed=15)
        batch(t, w, "fuzzed images", w / "fuzz", w / "out_fuzz", args.fuzz, "--max-memory", "1")
        bombs = H.bombs(w / "bombs")
        batch(t, w, "image bombs", w / "bombs", w / "out_bombs", len(bombs), "--max-memory", "1")
        src = w / "links"
        src.mkdir()
        (src / "dangling.png").symlink_to(w / "nowhere.png")
        (src / "loop.png").symlink_to(src / "loop.png")
        (src / "new\nline.png").write_bytes(b"not an image")
        batch(t, w, "links, names", src, w / "out_links", 3)
        ckpts = H.tampered_checkpoints(ckpt, w / "ckpts")
        one_liners(t, w, "checkpoints", [[*restore[:2], p, *restore[3:]] for p in ckpts.values()]
                   + [["info", p] for p in ckpts.values()])
        adapters = H.tampered_adapters(adapter, w / "tampered")
        one_liners(t, w, "adapters", [[*restore, "--adapter", d] for d in adapters.values()])
        opt = w / "o.yml"
        opt.write_text(f"name: h\npath: {{experiments_root: {w / 'exp'}}}\n")
        one_liners(t, w, "options (--set)", [["pretrain", "-opt", opt, "--set", s] for s, _ in H.BAD_SETS])
        one_liners(t, w, "restore flags", [[*restore, *f] for f, _ in H.BAD_FLAGS])

        base = ["restore", "--model", ckpt, "-q", "--threads", "1"]
        probes = {"image bombs": [base + ["-i", bombs[0], "-o", w / "p1"],
                                  base + ["-i", w / "bombs", "-o", w / "p2", "--max-memory", "1"]],
                  "header bombs": [["info", ckpts["middle_blk_num 10000"]], ["info", ckpts["width 512"]]],
                  "adapter bomb": [base + ["--adapter", adapters["rank 20000000"], "-i", w / "good", "-o", w / "p3"]]}
        peaks = {k: H.peak_rss(v, cwd=ROOT)[1:] for k, v in probes.items()}

    total = [sum(r[i] for r in t.rows.values()) for i in range(5)]
    measured = [p for p, _ in peaks.values() if p is not None]
    over = sum(1 for p, _ in peaks.values() if p is None or p > GB)
    print(f"machine: {machine()}\n")
    print("| inputs | tried | restored | clean errors | tracebacks | files lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in t.rows.items():
        print(f"| {name} | " + " | ".join(map(str, row)) + " |")
    print("| **all** | " + " | ".join(f"**{v}**" for v in total) + " |\n")
    print("| subprocess (peak RSS) | " + " | ".join(peaks) + " |")
    print("|---|" + "---:|" * len(peaks))
    print("| peak RSS | " + " | ".join(f"{p / GB:.2f} GB" if p else f"failed: {e.strip().splitlines()[-1:]}"
                                     for p, e in peaks.values()) + " |\n")
    print(f"worst peak RSS {max(measured) / GB:.2f} GB; bombs over 1 GB: {over}")
    print("(restored: fuzzed files that still decode, each with a 'restored with a warning' line where the "
          "decoder complained; clean errors: refused with their own line or one 'colora: error:' line)")
    return 0 if total[3] == total[4] == over == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
