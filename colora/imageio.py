"""Image I/O for the whole toolkit: one reader, one writer, one pixel convention.

In memory an image is float32 HxWxC in [0, 1], RGB order, C = 1 (grey) or 3 (colour); alpha is kept
apart (HxW) so that models only ever see colour. OpenCV does the decoding (fast, 16-bit capable),
but it is too forgiving: it returns None without a reason, or half an image for a truncated JPEG.
So the reader checks the file's structure first and every failure becomes an `ImageReadError`
naming the file and the reason.
"""
import contextlib
import io
import os
import struct
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from .errors import ColoraError, ImageReadError
from .fileio import atomic_write_bytes


@dataclass
class Image:
    """A decoded image file."""

    pixels: np.ndarray  # float32 HxWxC in [0, 1], C = 1 (grey) or 3 (RGB order)
    alpha: Optional[np.ndarray]  # float32 HxW in [0, 1], or None
    bit_depth: int  # 8 or 16: the file's sample depth, so outputs can be written at the same depth
    path: Path
    warnings: tuple = ()  # what the decoder said about damage it worked around (libjpeg, libpng, ...)


# ---------------------------------------------------------------------------------------------
# Listing

# The suffixes by which a folder's files are taken for images (the reader trusts only the bytes).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def file_or_dangling_link(path):
    """Files are listed, and so are dangling or looping links: the caller reports them (a failure
    line, a dataset problem) rather than letting them vanish."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def image_files(folder, recursive=True):
    """The image files in `folder` (and below it if `recursive`), sorted; [] if it is no folder.
    Hidden names are left out: macOS '._' shadows, and our own '.name.tmp' writes cut short."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.rglob("*") if recursive else folder.iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and file_or_dangling_link(p)]


# ---------------------------------------------------------------------------------------------
# Reading

_FORMAT_NAMES = "PNG, JPEG, TIFF, WebP or BMP"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF

# Undo EXIF orientation 2..8 (the same transforms as PIL.ImageOps.exif_transpose).
_UNDO_ORIENTATION = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _sniff(data):
    """The format from the magic bytes (not the extension, which may lie)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in _TIFF_MAGIC:
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    return None


def _png_damage(data):
    """Walk the PNG chunks: a missing IEND means truncation, a CRC mismatch means corruption."""
    view, pos = memoryview(data), 8
    while True:
        if pos + 12 > len(data):
            return "the file is truncated"
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return "the file is truncated"
        if zlib.crc32(view[pos + 4:end - 4]) != struct.unpack(">I", view[end - 4:end])[0]:
            return f"the file is corrupt (checksum error in its {kind.decode('latin-1')} chunk)"
        if kind == b"IEND":
            return None
        pos = end


def _damage(data, fmt):
    """A reason if the file is visibly truncated or corrupt, else None (the decoder does the rest)."""
    if fmt == "png":
        return _png_damage(data)
    if fmt == "jpeg":
        # libjpeg pads a truncated scan with grey and only warns: require an EOI marker after the
        # last start-of-scan (byte stuffing keeps FFD9 out of the entropy-coded data).
        eoi = data.rfind(b"\xff\xd9")
        return "the file is truncated" if eoi == -1 or eoi < data.rfind(b"\xff\xda") else None
    declared = None
    if fmt == "webp":  # RIFF size counts the bytes after the first 8
        declared = struct.unpack("<I", data[4:8])[0] + 8
    elif fmt == "bmp" and len(data) >= 6:  # some writers leave the file size 0
        declared = struct.unpack("<I", data[2:6])[0] or None
    return "the file is truncated" if declared and declared > len(data) else None


def _pil_header(data):
    """PIL's lazy view of the file (header only, no decoding), or None if PIL cannot parse it."""
    from PIL import Image as PILImage

    limit, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None  # the caller's check decides
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PILImage.open(io.BytesIO(data))
    except Exception:
        return None
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit


def _orientation(pil):
    try:
        value = pil.getexif().get(0x0112, 1) if pil is not None else 1
    except Exception:  # malformed EXIF must not make a decodable image unreadable
        return 1
    return value if value in _UNDO_ORIENTATION else 1


def _decode(data, fmt, pil):
    """Raw samples HxWxC (RGB order, alpha last) already upright, or a reason string."""
    if fmt == "tiff" and pil is not None and pil.mode == "LA":
        arr = np.asarray(pil)  # OpenCV drops the alpha of grey+alpha TIFFs; PIL keeps it
        return _UNDO_ORIENTATION.get(_orientation(pil), lambda a: a)(arr)
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        arr = None
    if arr is None:
        return f"the {fmt.upper()} data is corrupt or uses an unsupported variant"
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (3, 4):
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)
        if fmt == "png" and data[25] in (0, 4):  # IHDR colour type grey (+alpha), which OpenCV
            arr = arr[..., [0, 3]] if arr.shape[2] == 4 else arr[..., :1]  # expands: undo that
    # IMREAD_UNCHANGED ignores EXIF orientation, except in the TIFF decoder which applies it itself.
    if fmt != "tiff":
        arr = _UNDO_ORIENTATION.get(_orientation(pil), lambda a: a)(arr)
    return arr


@contextlib.contextmanager
def _decoder_messages():
    """Collect what C decoders (libjpeg, libpng, libtiff, OpenCV) print on file descriptor 2, so a
    damaged file that still decodes says so in its own report line instead of raw noise."""
    said = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (an embedding host): decode without capture
        yield said
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            said.extend(" ".join(line.split()) for line in text.splitlines() if line.strip())


def to_float32(arr):
    """uint8 / uint16 samples -> float32 in [0, 1] (the one dequantiser); float input is passed through."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    return np.asarray(arr, dtype=np.float32)


def read_image(path, check=None) -> Image:
    """Read a PNG, JPEG, TIFF, WebP or BMP file (8/16-bit; grey, grey+alpha, RGB, RGBA).

    EXIF orientation is applied. Raises ImageReadError for anything that is not a complete image.
    `check(height, width)` runs on the dimensions in the file's header, before anything is decoded:
    it raises to refuse a photo too large for the memory (a 600 KB PNG can hold 15000x15000 zeros).
    """
    path = Path(path)

    def fail(reason):
        return ImageReadError(f"cannot read image '{path}': {reason}")

    try:
        data = path.read_bytes()  # bytes + imdecode, never cv2.imread: works for unicode paths
    except FileNotFoundError:
        raise fail("the file does not exist") from None
    except IsADirectoryError:
        raise fail("it is a directory") from None
    except OSError as e:
        raise fail(f"the file cannot be opened ({e.strerror or e})") from None
    if not data:
        raise fail("the file is empty")
    fmt = _sniff(data)
    if fmt is None:
        raise fail(f"it is not a {_FORMAT_NAMES} image")
    reason = _damage(data, fmt)
    if reason:
        raise fail(reason)
    pil = _pil_header(data)
    if pil is None or min(pil.size) < 1:
        raise fail(f"its {fmt.upper()} header is corrupt or uses an unsupported variant")
    if check is not None:
        check(pil.size[1], pil.size[0])
    with _decoder_messages() as said:
        arr = _decode(data, fmt, pil)
    if isinstance(arr, str):
        raise fail(arr)
    if arr.dtype not in (np.uint8, np.uint16):
        raise fail(f"its {arr.dtype} samples are not supported (only 8- and 16-bit images are)")
    if arr.shape[2] not in (1, 2, 3, 4):
        raise fail(f"it has {arr.shape[2]} channels (only grey, grey+alpha, RGB and RGBA are supported)")
    colour_channels = 1 if arr.shape[2] <= 2 else 3
    alpha = arr[..., colour_channels] if arr.shape[2] in (2, 4) else None
    return Image(
        pixels=np.ascontiguousarray(to_float32(arr[..., :colour_channels])),
        alpha=None if alpha is None else np.ascontiguousarray(to_float32(alpha)),
        bit_depth=16 if arr.dtype == np.uint16 else 8,
        path=path,
        warnings=tuple(said),
    )


# ---------------------------------------------------------------------------------------------
# Writing

_EXTENSIONS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".webp": ".webp",
               ".tif": ".tif", ".tiff": ".tif", ".bmp": ".bmp"}
_SIXTEEN_BIT = {".png", ".tif"}
_WITH_ALPHA = {".png", ".webp", ".tif"}


def quantize(pixels, bit_depth=8):
    """Float [0, 1] -> uint8/uint16, clipped and rounded: the one quantiser (files, display,
    metrics, Restorer's integer outputs). NaN is an error, not silently black."""
    x = np.asarray(pixels, dtype=np.float32)
    if np.isnan(x).any():
        raise ValueError("pixels contain NaN")
    maxval, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    return np.rint(np.clip(x, 0.0, 1.0) * maxval).astype(dtype)


def to_uint8(pixels):
    """Float [0, 1] pixels -> uint8, clipped and rounded (for display, metrics, 8-bit files)."""
    return quantize(pixels, 8)


def as_saved(pixels, bit_depth=8):
    """Float pixels as a `bit_depth` file would give them back (what a metric on a saved photo sees)."""
    return to_float32(quantize(pixels, bit_depth))


def write_image(path, pixels, alpha=None, bit_depth=8, quality=95, overwrite=True):
    """Write float [0, 1] pixels (HxW, HxWx1 or HxWx3 RGB) to a file chosen by extension.

    Atomic (temp file + rename) and metadata-free; `overwrite=False` raises FileExistsError rather
    than replace a file that exists when the write completes. 16-bit for PNG/TIFF only; alpha is written to
    PNG/WebP/TIFF (a grey image with alpha becomes RGBA) and dropped with a warning elsewhere.
    `quality` applies to JPEG and WebP.
    """
    path = Path(path)
    ext = _EXTENSIONS.get(path.suffix.lower())
    if ext is None:
        raise ValueError(f"cannot write '{path}': unsupported extension (use {', '.join(_EXTENSIONS)})")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and ext not in _SIXTEEN_BIT:
        raise ValueError(f"cannot write '{path}' with 16 bits: only PNG and TIFF support 16-bit")
    pixels = np.asarray(pixels)
    if not np.issubdtype(pixels.dtype, np.floating):
        raise TypeError(f"write_image expects float pixels in [0, 1], got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"expected HxW, HxWx1 or HxWx3 pixels, got shape {pixels.shape}")
    arr = quantize(pixels, bit_depth)
    if arr.ndim == 3:
        arr = arr[..., ::-1]  # RGB -> BGR for OpenCV
    if alpha is not None and ext not in _WITH_ALPHA:
        warnings.warn(f"{path.suffix} files cannot store alpha; writing '{path}' without it", stacklevel=2)
        alpha = None
    if alpha is not None:
        alpha = np.asarray(alpha)
        alpha = alpha[..., 0] if alpha.ndim == 3 and alpha.shape[2] == 1 else alpha
        if alpha.shape != arr.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match the image size {arr.shape[:2]}")
        colour = arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)
        arr = np.dstack([colour, quantize(alpha, bit_depth)])
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
              ".webp": [cv2.IMWRITE_WEBP_QUALITY, int(quality)]}.get(ext, [])
    # Encode in memory first, so a failed encode never touches the destination.
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), params)
    if not ok:
        raise ValueError(f"cannot write '{path}': OpenCV could not encode the image as {ext}")
    atomic_write_bytes(path, buf.tobytes(), replace=overwrite)


# ---------------------------------------------------------------------------------------------
# Conversions and bundled test photos

def image_to_tensor(pixels):
    """HxWxC (or HxW) pixels -> (1, C, H, W) float32 tensor; uint8/uint16 are scaled to [0, 1]."""
    arr = to_float32(np.asarray(pixels))
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected HxW or HxWxC pixels, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def tensor_to_image(t):
    """(1, C, H, W) or (C, H, W) tensor -> HxWxC float32 numpy array clipped to [0, 1]."""
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected a (1, C, H, W) or (C, H, W) tensor, got shape {tuple(t.shape)}")
    return np.ascontiguousarray(t.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())


# Colour photos shipped inside the scikit-image wheel (never the download-on-demand ones).
_BUNDLED = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "immunohistochemistry": "ihc.png",
}
# Grey photos of the same wheel, returned as 3 equal channels: more scenes and textures for
# pre-training (the ablation's `prod_more`); never in the default selection.
_BUNDLED_GREY = {name: f"{name}.png" for name in ("camera", "brick", "grass", "gravel", "coins", "moon", "page", "text")}
_BUNDLED_GREY["clock"] = "clock_motion.png"
_ALIASES = {"ihc": "immunohistochemistry"}


def bundled_photos(names=None):
    """{name: float32 HxWx3 RGB} of real photos for tests and demos, read from the local files.

    Reads the files in scikit-image's data folder with `read_image` (so no network, ever, and the
    same decoder as user images). Ordered as `names`, or as listed above.
    """
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    names = list(_BUNDLED) if names is None else list(names)
    photos = {}
    for name in names:
        key = _ALIASES.get(name, name)
        files = {**_BUNDLED, **_BUNDLED_GREY}
        if key not in files:
            raise ColoraError(f"unknown bundled photo {name!r}; choose from {', '.join(files)}")
        file = folder / files[key]
        if not file.is_file():
            raise ColoraError(f"bundled photo {name!r} is not in this scikit-image install ({file})")
        px = read_image(file).pixels
        photos[name] = np.repeat(px.reshape(*px.shape[:2], -1)[..., :1], 3, axis=2) if key in _BUNDLED_GREY else px
    return photos
