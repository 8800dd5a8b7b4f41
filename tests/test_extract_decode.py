"""The device decoding path (sf.extract.decode), exercised on CPU: torchvision's decode_jpeg runs there too,
so the batch-then-per-file-then-Pillow fallback and the tensor letterbox are the code a GPU runs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sf.cache import schema as S
from sf.cache.reader import load_features
from sf.extract import decode as D
from sf.extract import sources as I
from sf.extract import job
from sf.extract.images import ImagePrep, load_image
from tests.test_extract_helpers import jpeg_bytes, random_image, tiny_config

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings(f"ignore:{D.DEPRECATED}:DeprecationWarning")]

CPU = torch.device("cpu")


def photo(seed: int, w: int = 72, h: int = 48) -> Image.Image:
    """Smooth colour gradients plus a disc: survives JPEG like a product photo (noise would not)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = rng.uniform(0.5, 2, 3)
    img = np.stack([(np.sin(xx / (9 * a[c]) + yy / (13 * a[c])) + 1) * 120 for c in range(3)], -1)
    img[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 4) ** 2] = rng.integers(0, 255, 3)
    return Image.fromarray(img.astype(np.uint8), "RGB")


def corrupt_scan(data: bytes) -> bytes:
    """A JPEG whose header is fine and which ends in EOI, but whose entropy-coded data holds a bogus marker."""
    bad = bytearray(data)
    mid = len(bad) // 2
    bad[mid : mid + 64] = b"\xff\x51" * 32
    return bytes(bad)


def exif_rotated(img: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(img, exif=exif.tobytes())


def test_jpeg_header_sends_only_plain_jpegs_to_the_device():
    plain = jpeg_bytes(photo(0))
    head = D.jpeg_header(plain)
    assert (head.width, head.height) == (72, 48)
    assert D.jpeg_header(jpeg_bytes(photo(0), progressive=True)) is not None
    assert D.jpeg_header(jpeg_bytes(photo(0).convert("L"))) is not None
    png = io.BytesIO()
    photo(0).save(png, "PNG")
    assert D.jpeg_header(png.getvalue()) is None  # PNG: Pillow
    assert D.jpeg_header(jpeg_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)))) is None  # CMYK: Pillow
    assert D.jpeg_header(plain[: len(plain) // 2]) is None  # truncated (no EOI): Pillow names it
    assert D.jpeg_header(exif_rotated(photo(0))) is None  # EXIF rotation: Pillow applies it
    assert D.jpeg_header(b"") is None and D.jpeg_header(b"\xff\xd8\xff\xd9") is None


@pytest.mark.parametrize("fit", ["pad", "crop"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_tensor_letterbox_matches_pillow(fit, interpolation):
    prep = ImagePrep(image_size=32, fit=fit, interpolation=interpolation)
    data = jpeg_bytes(photo(1, 90, 50), quality=95)
    pil = load_image(data, prep).astype(np.int16)
    dec = D.DeviceDecoder(prep, CPU, 10**8)
    (img,) = dec.decode([torch.frombuffer(bytearray(data), dtype=torch.uint8)])
    ours = dec.fit({0: img})[0].numpy().astype(np.int16)
    assert ours.shape == pil.shape == (32, 32, 3)
    # Pillow decodes JPEGs at a reduced DCT scale first (draft), so pixels differ a little, not much.
    assert np.abs(ours - pil).mean() < 4, np.abs(ours - pil).mean()
    if fit == "pad":  # the letterbox bands are exactly the background colour in both
        assert (ours[:4] == 255).all() and (pil[:4] == 255).all()


def test_one_bad_file_fails_the_batched_call_and_only_itself(tmp_path):
    from torchvision.io import ImageReadMode, decode_jpeg

    good = [jpeg_bytes(photo(i)) for i in range(3)]
    bad = corrupt_scan(jpeg_bytes(photo(9)))
    assert D.jpeg_header(bad) is not None  # the header scan cannot tell: the device decoder must fail on it
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in (good[0], bad, good[1], good[2])]
    with pytest.raises(RuntimeError):
        decode_jpeg(tensors, mode=ImageReadMode.RGB)  # what makes the per-file retry necessary
    out = D.DeviceDecoder(ImagePrep(image_size=32), CPU, 10**8).decode(tensors)
    assert [o is None for o in out] == [False, True, False, False]
    for o, b in zip([out[0], out[2], out[3]], good):
        ref = decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB)
        assert torch.equal(o, ref)


def test_batch_with_png_cmyk_truncated_and_broken_jpegs_gets_pillows_verdicts(tmp_path):
    prep = ImagePrep(image_size=32)
    jpg = jpeg_bytes(photo(2))
    files = {
        "plain.jpg": jpg,
        "gray.jpg": jpeg_bytes(photo(3).convert("L")),
        "cmyk.jpg": jpeg_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0))),
        "truncated.jpg": jpg[: len(jpg) // 2],
        "broken.jpg": corrupt_scan(jpeg_bytes(photo(4))),
        "rotated.jpg": exif_rotated(photo(5)),
        "text.jpg": b"not an image at all",
        "empty.jpg": b"",
    }
    buf = io.BytesIO()
    random_image(6).save(buf, "PNG")
    files["image.png"] = buf.getvalue()
    sources = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        sources.append(tmp_path / name)
    sources += [tmp_path / "missing.jpg", None]
    names = list(files) + ["missing.jpg", None]

    pillow = job.collate([job.DecodeRows(sources, prep, 10**8)[j] for j in range(len(sources))])
    batch = D.collate_read([D.ReadRows(sources, prep, 10**8)[j] for j in range(len(sources))])
    device = D.DeviceDecoder(prep, CPU, 10**8)(batch)

    assert device["status"] == pillow["status"] and device["reason"] == pillow["reason"]
    assert device["ok"] == pillow["ok"]
    decoder = dict(zip(names, device["decoder"]))
    assert decoder["plain.jpg"] == decoder["gray.jpg"] == "libjpeg"
    assert decoder["cmyk.jpg"] == decoder["rotated.jpg"] == decoder["image.png"] == "pillow"
    status = dict(zip(names, device["status"]))
    assert status["truncated.jpg"] == status["text.jpg"] == status["empty.jpg"] == status["missing.jpg"] == "unreadable"
    assert status[None] == "no_image"
    assert decoder["truncated.jpg"] == decoder[None] == ""
    # broken.jpg: nvJPEG/libjpeg refuse it, Pillow's verdict stands (whatever it is, the same as the Pillow path).
    assert decoder["broken.jpg"] == ("pillow" if status["broken.jpg"] == "ok" else "")
    # Pillow-decoded rows are the Pillow path's pixels exactly; device-decoded ones are close.
    for k, name in enumerate(names):
        if name in files and status[name] == "ok":
            mine = device["images"][device["ok"].index(k)].numpy().astype(np.int16)
            ref = pillow["images"][pillow["ok"].index(k)].numpy().astype(np.int16)
            if decoder[name] == "pillow":
                assert np.array_equal(mine, ref), name
            else:
                assert np.abs(mine - ref).mean() < 4, name


def test_store_records_the_decoder_and_features_stay_close(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"j{i}.jpg").write_bytes(jpeg_bytes(photo(i, 64 + 8 * i, 48), quality=95))
    random_image(7).save(folder / "p.png")
    (folder / "cut.jpg").write_bytes(jpeg_bytes(photo(8))[:200])
    rows = I.from_images_dir(folder)
    a = load_features(job.run(rows, tmp_path / "pil.h5", tiny_config(decoder="pillow", image_size=64)).out)
    b = load_features(job.run(rows, tmp_path / "tv.h5", tiny_config(decoder="torchvision", image_size=64)).out)
    assert a.keys == b.keys and list(a.status) == list(b.status) and list(a.reason) == list(b.reason)
    import h5py

    with h5py.File(tmp_path / "pil.h5") as f, h5py.File(tmp_path / "tv.h5") as g:
        pil = [S.DECODERS[c] for c in f[S.IMAGE_DECODER][()]]
        tv = [S.DECODERS[c] for c in g[S.IMAGE_DECODER][()]]
        assert g.attrs["decoder"] == "torchvision"
    status = dict(zip(a.keys, a.status))
    assert [d for k, d in zip(a.keys, pil)] == ["pillow" if status[k] == "ok" else "" for k in a.keys]
    assert dict(zip(b.keys, tv)) == {**{f"j{i}": "libjpeg" for i in range(6)}, "p": "pillow", "cut": ""}
    x, y = a.image_pooled.astype(np.float32), b.image_pooled.astype(np.float32)
    ok = a.has_image
    cos = (x[ok] * y[ok]).sum(1) / np.linalg.norm(x[ok], axis=1) / np.linalg.norm(y[ok], axis=1)
    assert cos.min() > 0.98, cos
    assert np.array_equal(x[list(a.keys).index("p")], y[list(b.keys).index("p")])  # same decoder, same bits


def test_decode_ahead_on_a_thread_gives_the_same_batches_in_order(tmp_path):
    """The CUDA path decodes one batch ahead on a thread (sf.extract.prefetch); on CPU the same code runs
    when asked, and must hand the forward queue exactly what the inline decode does."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(11):
        (folder / f"j{i:02d}.jpg").write_bytes(jpeg_bytes(photo(i, 40 + 4 * i, 48)))
    (folder / "cut.jpg").write_bytes(jpeg_bytes(photo(20))[:100])
    sources = [it.image for it in I.from_images_dir(folder).items] + [None]
    ext = job.build_extractor(tiny_config(decoder="torchvision", batch_size=4, image_size=32), with_text=False)
    inline = list(job.decoded_batches(ext, sources, workers=0, ahead=False))
    threaded = list(job.decoded_batches(ext, sources, workers=1, ahead=True))
    assert len(inline) == len(threaded) == 4
    for a, b in zip(inline, threaded):
        assert a["idx"] == b["idx"] and a["ok"] == b["ok"] and a["status"] == b["status"]
        assert a["decoder"] == b["decoder"] and a["reason"] == b["reason"]
        assert (a["images"] is None and b["images"] is None) or torch.equal(a["images"], b["images"])
    assert threaded[-1]["images"] is None  # the last batch: one product without an image
    assert "unreadable" in [s for b in threaded for s in b["status"]]


def test_decode_ahead_raises_the_threads_error_in_order_and_stops_early():
    from sf.extract import prefetch

    def work(b):
        if b == 3:
            raise ValueError("batch 3 is bad")
        return {"b": b, "images": None}

    got = []
    with pytest.raises(ValueError, match="batch 3 is bad"):
        for item in prefetch.ahead(range(6), work, CPU):
            got.append(item["b"])
    assert got == [0, 1, 2]
    # A consumer that stops after one batch of an endless source returns: the thread is told to stop.
    import itertools
    import threading

    stream = prefetch.ahead(itertools.count(), lambda b: {"b": b, "images": None}, CPU)
    assert next(stream)["b"] == 0
    stream.close()
    assert not any(t.name == "sf-decode-ahead" and t.is_alive() for t in threading.enumerate())
