"""Bad and unusual image input: every case becomes a clear row status, never a dead job."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from sf.cache.reader import load_features
from sf.errors import SfError
from sf.extract import sources as I
from sf.extract import job
from sf.extract.images import BadImage, ImagePrep, load_image
from tests.test_extract_helpers import jpeg_bytes, make_images, png_header_only, random_image, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PREP = ImagePrep(image_size=16, fit="pad")
RED = np.array([255, 0, 0])
WHITE = np.array([255, 255, 255])


def close(px, colour, tol=12):
    return np.abs(px.astype(int) - colour).max() <= tol


# ---------------------------------------------------------------- decoding, one case at a time


def test_rgba_transparency_is_composited_on_white(tmp_path):
    a = np.zeros((16, 16, 4), np.uint8)
    a[:, :8] = (255, 0, 0, 255)  # left half opaque red, right half fully transparent (black underneath)
    Image.fromarray(a, "RGBA").save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", PREP)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert close(out[8, 2], RED) and close(out[8, 13], WHITE)


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (16, 16), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    for x in range(8, 16):
        for y in range(16):
            img.putpixel((x, y), 0)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png", PREP)
    assert close(out[8, 2], RED) and close(out[8, 13], WHITE)


def test_grayscale_becomes_equal_rgb_channels(tmp_path):
    Image.new("L", (16, 16), 77).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png", PREP)
    assert (out == 77).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    a = np.full((16, 16), 65535, np.uint16)
    a[:, :8] = 32896  # 128 * 257
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = load_image(tmp_path / "deep.png", PREP)
    assert (out[:, :6] == 128).all() and (out[:, 10:] == 255).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    (tmp_path / "c.jpg").write_bytes(jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95))
    out = load_image(tmp_path / "c.jpg", PREP)
    assert close(out[8, 8], RED, tol=30)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (32, 16), (255, 0, 0))  # wide; EXIF 6 says "rotate 90 degrees": it is tall
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "o.jpg", PREP)
    # Tall content letterboxed into a square: white bars left and right, red in the middle column.
    assert close(out[8, 0], WHITE) and close(out[8, 15], WHITE) and close(out[0, 8], RED, tol=30)


def test_crop_fit_fills_the_square(tmp_path):
    Image.new("RGB", (32, 16), (255, 0, 0)).save(tmp_path / "w.png")
    out = load_image(tmp_path / "w.png", ImagePrep(image_size=16, fit="crop"))
    assert close(out[0, 0], RED) and close(out[15, 15], RED)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("zero.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image at all\n" * 5, "not an image"),
        ("bomb.png", png_header_only(100_000, 100_000), "too large"),
    ],
)
def test_bad_files_raise_with_a_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadImage, match=reason):
        load_image(tmp_path / name, PREP)


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(random_image(1, 64, 64), quality=90)
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated or corrupt"):
        load_image(tmp_path / "t.jpg", PREP)


def test_corrupt_png_data(tmp_path):
    random_image(2, 64, 64).save(tmp_path / "c.png")
    data = bytearray((tmp_path / "c.png").read_bytes())
    for i in range(60, len(data) - 20, 7):  # scramble the compressed pixel data, keep the header
        data[i] ^= 0x5A
    (tmp_path / "c.png").write_bytes(bytes(data))
    with pytest.raises(BadImage):
        load_image(tmp_path / "c.png", PREP)


def test_pixel_limit_is_configurable(tmp_path):
    random_image(3, 64, 64).save(tmp_path / "big.png")
    with pytest.raises(BadImage, match="too large: 64x64"):
        load_image(tmp_path / "big.png", PREP, max_pixels=1000)
    assert load_image(tmp_path / "big.png", PREP, max_pixels=64 * 64).shape == (16, 16, 3)


def test_missing_file_and_folder_named_like_an_image(tmp_path):
    with pytest.raises(BadImage, match="file not found"):
        load_image(tmp_path / "nope.png", PREP)
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(BadImage, match="folder"):
        load_image(tmp_path / "dir.jpg", PREP)


# ---------------------------------------------------------------- listing a folder


def test_listing_keys_duplicates_and_skips(tmp_path):
    make_images(tmp_path / "sub", 2)
    random_image(5).save(tmp_path / "a.png")
    random_image(6).save(tmp_path / "a.jpg")  # same key "a"
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".DS_Store").write_text("x")
    rows = I.from_images_dir(tmp_path)
    assert [it.key for it in rows.items] == ["a", "sub/img000", "sub/img001"]
    assert rows.items[0].image.name == "a.jpg"  # sorted: a.jpg before a.png, first wins
    assert any("duplicate key 'a'" in n for n in rows.notes)
    assert any("1 file(s) without an image extension" in n for n in rows.notes)


def test_unreadable_subfolder_is_noted_not_fatal(tmp_path, monkeypatch):
    make_images(tmp_path, 2)
    make_images(tmp_path / "locked", 2)
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rows = I.from_images_dir(tmp_path)
    assert [it.key for it in rows.items] == ["img000", "img001"]
    assert any("cannot read folder" in n and "locked" in n for n in rows.notes)


def test_unreadable_or_empty_top_folder_is_one_line_error(tmp_path, monkeypatch):
    with pytest.raises(SfError, match="no image files"):
        I.from_images_dir(tmp_path)
    with pytest.raises(SfError, match="not found"):
        I.from_images_dir(tmp_path / "nope")
    monkeypatch.setattr(os, "listdir", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(SfError, match="cannot read the image folder"):
        I.from_images_dir(tmp_path)


# ---------------------------------------------------------------- a whole run over a folder of trouble


@pytest.fixture(scope="module")
def trouble(tmp_path_factory):
    d = tmp_path_factory.mktemp("trouble")
    random_image(1).save(d / "good.png")
    random_image(2).save(d / "wrongext.jpg", format="PNG")
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    (d / "bomb.png").write_bytes(png_header_only(50_000, 50_000))
    data = jpeg_bytes(random_image(3, 64, 64))
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(d / "deep.png")
    Image.new("P", (8, 8), 3).save(d / "palette.png")
    (d / "cmyk.jpg").write_bytes(jpeg_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0))))
    Image.new("RGBA", (8, 8), (0, 0, 255, 100)).save(d / "rgba.png")
    Image.new("L", (8, 8), 90).save(d / "gray.png")
    return d


def test_run_survives_every_bad_file_and_reports_it(trouble, tmp_path, cli):
    out = tmp_path / "t.h5"
    code, stdout, stderr = cli("extract", "--images", trouble, "--out", out, "--backbone", "resnet18", "--weights", "random",
                               "--image-size", "32", "--batch-size", "4", "--workers", "0")
    assert code == 0, stderr
    f = load_features(out)
    status = dict(zip(f.keys, f.status))
    reason = dict(zip(f.keys, f.reason))
    for k in ("good", "wrongext", "deep", "palette", "cmyk", "rgba", "gray"):
        assert status[k] == "ok", (k, reason[k])
    for k, why in (("zero", "empty"), ("text", "not an image"), ("bomb", "too large"), ("truncated", "truncated")):
        assert status[k] == "unreadable" and why in reason[k]
    ok = f.has_image
    assert np.abs(f.image_pooled[ok].astype(np.float32)).sum(axis=1).min() > 0
    assert not f.image_pooled[~ok].any() and not np.asarray(f.image_grid)[~ok].any()
    assert "unreadable images (4)" in stdout and "status ok" in stdout
    # --strict: same store, but the run fails, in one line.
    code, _, stderr = cli("extract", "--images", trouble, "--out", out, "--backbone", "resnet18", "--weights", "random",
                          "--image-size", "32", "--workers", "0", "--strict")
    assert code == 2 and "--strict: 4 unreadable" in stderr and "Traceback" not in stderr


def test_nothing_readable_fails(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"")
    (tmp_path / "imgs" / "b.png").write_text("nope")
    report = job.run(I.from_images_dir(tmp_path / "imgs"), tmp_path / "s.h5", tiny_config())
    with pytest.raises(SfError, match="no image could be read"):
        job.check_outcome(report, strict=False)


def test_missing_and_absent_images_in_a_products_table(tmp_path):
    make_images(tmp_path / "imgs", 2)
    (tmp_path / "p.csv").write_text("product_id,image,text\nA,img000.png,red dress\nB,,blue shirt\nC,gone.png,\nD,img001.png,x\n")
    rows = I.from_products_table(tmp_path / "p.csv", tmp_path / "imgs")
    report = job.run(rows, tmp_path / "s.h5", tiny_config())
    f = load_features(report.out)
    assert f.keys == ["A", "B", "C", "D"]
    assert list(f.status) == ["ok", "no_image", "unreadable", "ok"]
    assert f.reason[2] == "file not found"
    assert list(f.has_text) == [True, True, False, True]
    (tmp_path / "dup.csv").write_text("product_id,image\nA,img000.png\nA,img001.png\n")
    with pytest.raises(SfError, match=r"row 2, column 'product_id': duplicate product_id 'A'"):
        I.from_products_table(tmp_path / "dup.csv", tmp_path / "imgs")
