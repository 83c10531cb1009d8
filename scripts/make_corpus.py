"""Build colora's photo corpus from Debian wallpaper packages (see scripts/corpus.json).

Why: the eight photos bundled with scikit-image are far too few to pre-train on (issue 13), and
Debian ships dozens of freely licensed high-resolution photographs. Each listed photo is taken
from its package (downloaded with `apt-get download`, unpacked with `dpkg-deb -x`, nothing is
installed), checked against its recorded sha256, turned into 8-bit RGB and downscaled with area
averaging so its long side is `long_side[split]` (which also hides the originals' JPEG artefacts).

    python scripts/make_corpus.py -o corpus/            # corpus/train/*.png, corpus/heldout/*.png

The held-out split is what benchmarks/heldout/ holds (committed, so benchmarks need no download);
no pre-training or fine-tuning preset may point at it.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

LIST = Path(__file__).with_name("corpus.json")


def unpack(package, cache):
    """The package's files under cache/<package>/ (downloaded and unpacked once)."""
    root = cache / package
    if root.is_dir():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    tmp = Path(tempfile.mkdtemp(dir=cache))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(root)
    return root


def downscale(img, long_side):
    """8-bit RGB with its long side at most `long_side` (area averaging)."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    if s < 1:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return img


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "colora_corpus")
    p.add_argument("--split", choices=("train", "heldout", "all"), default="all")
    a = p.parse_args(argv)
    spec = json.loads(LIST.read_text())
    for photo in spec["photos"]:
        if a.split not in ("all", photo["split"]):
            continue
        src = unpack(photo["package"], a.cache) / photo["path"]
        data = src.read_bytes()
        if hashlib.sha256(data).hexdigest() != photo["sha256"]:
            sys.exit(f"{photo['package']}:{photo['path']} differs from the recorded file "
                     "(the package changed); update scripts/corpus.json after checking it")
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        img = downscale(img, spec["long_side"][photo["split"]])
        out = a.output / photo["split"] / f"{photo['name']}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), img)
        print(out, img.shape[1], "x", img.shape[0])


if __name__ == "__main__":
    main()
