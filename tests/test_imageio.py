"""Image reading/writing: round trips, bit depths, alpha, EXIF orientation, and every kind of bad file."""
import io
import socket
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageOps

import colora.fileio
from colora.errors import ColoraError, ImageReadError
from colora.imageio import (as_saved, bundled_photos, image_files, image_to_tensor, quantize, read_image,
                            tensor_to_image, to_uint8, write_image)
from colora.metrics import calculate_psnr


@pytest.fixture(scope="module")
def photo():
    """A real photo crop, 48x80 (not square, so a transposed read would fail shape checks)."""
    return bundled_photos(["astronaut"])["astronaut"][60:108, 180:260].copy()


def levels(rng, shape, bit_depth):
    """Random float pixels that sit exactly on the integer levels of `bit_depth`."""
    maxval = 2**bit_depth - 1
    return (rng.integers(0, maxval + 1, shape) / maxval).astype(np.float32)


def pil_bytes(img, fmt, **kw):
    bio = io.BytesIO()
    img.save(bio, fmt, **kw)
    return bio.getvalue()


def exif_orientation(value):
    exif = PILImage.Exif()
    exif[0x0112] = value
    return exif


# --- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["png", "tif", "tiff", "bmp"])
def test_lossless_8bit_rgb_round_trip(tmp_path, photo, ext):
    path = tmp_path / f"out.{ext}"
    write_image(path, photo)
    img = read_image(path)
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (48, 80, 3)
    assert img.bit_depth == 8 and img.alpha is None and img.path == path
    np.testing.assert_array_equal(to_uint8(img.pixels), to_uint8(photo))


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "webp"])
def test_lossy_8bit_rgb_round_trip(tmp_path, photo, ext):
    write_image(tmp_path / f"out.{ext}", photo)
    img = read_image(tmp_path / f"out.{ext}")
    assert img.pixels.shape == (48, 80, 3) and img.bit_depth == 8
    assert calculate_psnr(img.pixels, photo) > 35


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_round_trip_is_exact(tmp_path, ext, channels):
    rng = np.random.default_rng(0)
    pixels = levels(rng, (17, 23, channels), 16)
    alpha = levels(rng, (17, 23), 16)
    write_image(tmp_path / f"a.{ext}", pixels, alpha=alpha, bit_depth=16)
    write_image(tmp_path / f"b.{ext}", pixels, bit_depth=16)
    for name, want_alpha in (("a", alpha), ("b", None)):
        img = read_image(tmp_path / f"{name}.{ext}")
        assert img.bit_depth == 16
        # With alpha, grey is stored as RGBA (no 2-channel PNG/TIFF writer in OpenCV).
        want = pixels if want_alpha is None or channels == 3 else np.repeat(pixels, 3, axis=2)
        np.testing.assert_array_equal(img.pixels, want)
        if want_alpha is None:
            assert img.alpha is None
        else:
            np.testing.assert_array_equal(img.alpha, want_alpha)


@pytest.mark.parametrize("ext", ["png", "tif", "jpg", "bmp"])
def test_grey_stays_one_channel(tmp_path, photo, ext):
    grey = photo.mean(axis=2)
    write_image(tmp_path / f"g.{ext}", grey)
    write_image(tmp_path / f"g1.{ext}", grey[..., None])  # HxWx1 accepted too
    for name in ("g", "g1"):
        img = read_image(tmp_path / f"{name}.{ext}")
        assert img.pixels.shape == (48, 80, 1)
    if ext != "jpg":
        np.testing.assert_array_equal(to_uint8(img.pixels[..., 0]), to_uint8(grey))


def test_grey_16bit_png_and_webp_grey(tmp_path, photo):
    grey = levels(np.random.default_rng(1), (9, 14), 16)
    write_image(tmp_path / "g.png", grey, bit_depth=16)
    img = read_image(tmp_path / "g.png")
    assert img.pixels.shape == (9, 14, 1) and img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels[..., 0], grey)
    write_image(tmp_path / "g.webp", photo.mean(axis=2))  # WebP has no grey mode: comes back RGB
    assert read_image(tmp_path / "g.webp").pixels.shape == (48, 80, 3)


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
def test_rgba_alpha_round_trips_bit_exactly(tmp_path, photo, ext):
    alpha = levels(np.random.default_rng(2), photo.shape[:2], 8)
    write_image(tmp_path / f"a.{ext}", photo, alpha=alpha)
    img = read_image(tmp_path / f"a.{ext}")
    assert img.alpha.dtype == np.float32 and img.alpha.shape == (48, 80)
    np.testing.assert_array_equal(img.alpha, alpha)
    if ext != "webp":
        np.testing.assert_array_equal(to_uint8(img.pixels), to_uint8(photo))


def test_grey_alpha_and_palette_files_from_other_writers(tmp_path, photo):
    """Files OpenCV would not write itself: grey+alpha PNG/TIFF and palette PNG."""
    la = np.dstack([to_uint8(photo[..., 0]), to_uint8(photo[..., 1])])
    for fmt in ("PNG", "TIFF"):
        (tmp_path / f"la.{fmt}").write_bytes(pil_bytes(PILImage.fromarray(la, "LA"), fmt))
        img = read_image(tmp_path / f"la.{fmt}")
        assert img.pixels.shape == (48, 80, 1) and img.bit_depth == 8
        np.testing.assert_array_equal(to_uint8(img.pixels[..., 0]), la[..., 0])
        np.testing.assert_array_equal(to_uint8(img.alpha), la[..., 1])
    # OpenCV drops a grey+alpha TIFF's alpha, so that file goes through PIL: orientation still applies.
    (tmp_path / "la6.tif").write_bytes(pil_bytes(PILImage.fromarray(la, "LA"), "TIFF", exif=exif_orientation(6)))
    img = read_image(tmp_path / "la6.tif")
    np.testing.assert_array_equal(to_uint8(img.alpha), np.rot90(la[..., 1], -1))
    pal = PILImage.fromarray(to_uint8(photo)).convert("P")
    (tmp_path / "p.png").write_bytes(pil_bytes(pal, "PNG"))
    img = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(to_uint8(img.pixels), np.asarray(pal.convert("RGB")))


def test_write_clips_rounds_and_handles_unicode_paths(tmp_path):
    pixels = np.array([[-0.2, 0.5, 1.3, 0.4 / 255]], np.float32)
    path = tmp_path / "fötö 写真.png"
    write_image(path, pixels)
    np.testing.assert_array_equal(to_uint8(read_image(path).pixels[..., 0]), [[0, 128, 255, 0]])


# --- EXIF orientation ---------------------------------------------------------------------------

def test_jpeg_exif_orientation_rotates(tmp_path, photo):
    path = tmp_path / "rot.jpg"
    path.write_bytes(pil_bytes(PILImage.fromarray(to_uint8(photo)), "JPEG", quality=95, exif=exif_orientation(6)))
    img = read_image(path)
    assert img.pixels.shape == (80, 48, 3)  # orientation 6: stored landscape, shown portrait
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    assert calculate_psnr(img.pixels, upright) > 40  # same file, possibly different IDCTs


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pil(tmp_path, photo, fmt, orientation):
    """Lossless files: exact agreement with PIL.ImageOps.exif_transpose (TIFF: OpenCV orients itself)."""
    path = tmp_path / f"o.{fmt.lower()}"
    path.write_bytes(pil_bytes(PILImage.fromarray(to_uint8(photo[:5, :7])), fmt, exif=exif_orientation(orientation),
                               **({"lossless": True} if fmt == "WEBP" else {})))
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    np.testing.assert_array_equal(to_uint8(read_image(path).pixels), upright)


def insert_png_chunk(png, kind, payload):
    """Insert a chunk right after IHDR (which always ends at byte 33)."""
    chunk = struct.pack(">I4s", len(payload), kind) + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return png[:33] + chunk + png[33:]


def test_orientation_keeps_16bit_and_alpha(tmp_path):
    rng = np.random.default_rng(3)
    pixels, alpha = levels(rng, (6, 10, 3), 16), levels(rng, (6, 10), 16)
    write_image(tmp_path / "plain.png", pixels, alpha=alpha, bit_depth=16)
    exif = PILImage.Exif()
    exif[0x0112] = 8
    tagged = insert_png_chunk((tmp_path / "plain.png").read_bytes(), b"eXIf", exif.tobytes()[6:])  # drop "Exif\0\0"
    (tmp_path / "tagged.png").write_bytes(tagged)
    img = read_image(tmp_path / "tagged.png")
    assert img.bit_depth == 16 and img.pixels.shape == (10, 6, 3)
    np.testing.assert_array_equal(img.pixels, np.rot90(pixels, 1))  # orientation 8 = rotate 90 ccw
    np.testing.assert_array_equal(img.alpha, np.rot90(alpha, 1))


# --- bad files ----------------------------------------------------------------------------------

def _png(photo):
    return cv2.imencode(".png", to_uint8(photo))[1].tobytes()


def _jpg(photo):
    return cv2.imencode(".jpg", to_uint8(photo))[1].tobytes()


def _corrupt_middle(data):
    data = bytearray(data)
    mid = len(data) // 2
    data[mid:mid + 8] = bytes(255 - b for b in data[mid:mid + 8])
    return bytes(data)


BAD_FILES = {
    "empty.png": (lambda p: b"", "empty"),
    "notes.png": (lambda p: b"this is a text file, not a picture\n", "not a PNG, JPEG"),
    "cut.png": (lambda p: _png(p)[: len(_png(p)) // 2], "truncated"),
    "no_iend.png": (lambda p: _png(p)[:-12], "truncated"),
    "cut.jpg": (lambda p: _jpg(p)[: len(_jpg(p)) // 2], "truncated"),
    "no_eoi.jpg": (lambda p: _jpg(p)[:-2], "truncated"),  # libjpeg alone would decode this with a warning
    "flipped.png": (lambda p: _corrupt_middle(_png(p)), "corrupt"),
    "bad_header.jpg": (lambda p: _jpg(p)[:3] + b"\x00" * 200 + _jpg(p)[203:], "corrupt"),
    "cut.webp": (lambda p: cv2.imencode(".webp", to_uint8(p))[1].tobytes()[:-50], "truncated"),
    "anim.gif": (lambda p: b"GIF89a" + b"\x00" * 20, "not a PNG, JPEG"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_files_raise_image_read_error(tmp_path, photo, name):
    make, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(make(photo))
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"cannot read image '{path}': ") and "\n" not in message
    assert isinstance(info.value, ColoraError)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match=r"'.*missing\.png': the file does not exist"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_format_comes_from_content_not_extension(tmp_path, photo):
    (tmp_path / "really_a_jpeg.png").write_bytes(_jpg(photo))
    assert read_image(tmp_path / "really_a_jpeg.png").pixels.shape == (48, 80, 3)


# --- writing: atomicity and refusals ------------------------------------------------------------

def test_atomic_write_leaves_only_the_destination(tmp_path, photo):
    write_image(tmp_path / "sub" / "out.png", photo)
    write_image(tmp_path / "sub" / "out.png", photo * 0.5)  # overwrite
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.png"]


def test_failed_encode_creates_nothing(tmp_path, photo, monkeypatch):
    write_image(tmp_path / "keep.png", photo)
    before = (tmp_path / "keep.png").read_bytes()
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (False, None))
    for name in ("new.png", "keep.png"):
        with pytest.raises(ValueError, match="could not encode"):
            write_image(tmp_path / name, photo)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    assert (tmp_path / "keep.png").read_bytes() == before


def test_failed_disk_write_leaves_no_temp_file(tmp_path, photo, monkeypatch):
    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(colora.fileio.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "out.png", photo)
    assert list(tmp_path.iterdir()) == []


def test_write_refusals(tmp_path, photo):
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "x.jpg", photo, bit_depth=16)
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "x.webp", photo, bit_depth=16)
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "x.gif", photo)
    with pytest.raises(TypeError, match="float"):
        write_image(tmp_path / "x.png", to_uint8(photo))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "x.png", np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "x.png", photo[..., :2])
    with pytest.raises(ValueError, match="alpha shape"):
        write_image(tmp_path / "x.png", photo, alpha=np.ones((3, 3), np.float32))
    assert list(tmp_path.iterdir()) == []
    with pytest.warns(UserWarning, match="alpha"):
        write_image(tmp_path / "x.jpg", photo, alpha=np.ones(photo.shape[:2], np.float32))
    assert read_image(tmp_path / "x.jpg").alpha is None


# --- conversions and bundled photos -------------------------------------------------------------

def test_tensor_conversions(photo):
    t = image_to_tensor(photo)
    assert t.shape == (1, 3, 48, 80) and t.dtype == torch.float32
    np.testing.assert_array_equal(tensor_to_image(t), photo)
    np.testing.assert_array_equal(tensor_to_image(t[0]), photo)
    assert image_to_tensor(photo[..., 0]).shape == (1, 1, 48, 80)
    np.testing.assert_allclose(image_to_tensor(to_uint8(photo)).numpy(), t.numpy(), atol=0.5 / 255)
    out = tensor_to_image(t * 3 - 1)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    with pytest.raises(ValueError, match="batch"):
        tensor_to_image(torch.zeros(2, 3, 4, 4))


def test_bundled_photos_are_local_and_ordered(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("bundled_photos must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    photos = bundled_photos()
    assert {name: p.shape for name, p in photos.items()} == {
        "astronaut": (512, 512, 3), "chelsea": (300, 451, 3), "coffee": (400, 600, 3),
        "rocket": (427, 640, 3), "motorcycle_left": (500, 741, 3), "hubble_deep_field": (872, 1000, 3),
        "retina": (1411, 1411, 3), "immunohistochemistry": (512, 512, 3),
    }  # dict equality ignores order, so check it separately
    assert list(photos) == ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left",
                            "hubble_deep_field", "retina", "immunohistochemistry"]
    for p in photos.values():
        assert p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    assert list(bundled_photos(["rocket", "ihc"])) == ["rocket", "ihc"]
    from skimage import data

    np.testing.assert_array_equal(to_uint8(photos["astronaut"]), data.astronaut())
    with pytest.raises(ColoraError, match="unknown bundled photo"):
        bundled_photos(["lena"])
    # grey photos (on request only) come as three equal channels of the original
    grey = bundled_photos(["camera", "clock"])
    assert grey["camera"].shape == (512, 512, 3) and grey["clock"].shape == (300, 400, 3)
    np.testing.assert_array_equal(to_uint8(grey["camera"][..., 1]), data.camera())
    assert (grey["camera"][..., 0] == grey["camera"][..., 2]).all()


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_as_saved_is_what_a_file_gives_back(tmp_path, bit_depth):
    """The one quantiser: metrics on "the image as saved" see exactly the file's pixels."""
    x = np.random.default_rng(bit_depth).uniform(-0.1, 1.1, (9, 11, 3)).astype(np.float32)
    write_image(tmp_path / "x.png", x, bit_depth=bit_depth)
    back = read_image(tmp_path / "x.png").pixels
    assert back.dtype == as_saved(x, bit_depth).dtype == np.float32
    np.testing.assert_array_equal(as_saved(x, bit_depth), back)
    assert quantize(x, bit_depth).dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.full((2, 2), np.nan))


def test_image_files_lists_images_and_links_but_not_hidden_files(tmp_path):
    """The listing rule of datasets, benchmarks, restore and eval."""
    for name in ("b.PNG", "a.jpg", "sub/c.tif", ".photo.abcd1234.tmp.png", "._a.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    names = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)]
    assert names == ["a.jpg", "b.PNG", "gone.png", "sub/c.tif"]
    assert [p.name for p in image_files(tmp_path, recursive=False)] == ["a.jpg", "b.PNG", "gone.png"]
    assert image_files(tmp_path / "missing") == []
