"""The device decoding path: workers read bytes, JPEGs are decoded in batches on the device (nvJPEG on
CUDA), resized, letterboxed and handed on as uint8 — Pillow (sf.extract.images) takes the rest.

    worker   read the file's bytes; parse the JPEG header (a few hundred bytes). A plain 8-bit
             YCbCr/grey JPEG that ends in its EOI marker and has no EXIF rotation goes to the device
             as bytes; anything else (PNG, WebP, CMYK, 12-bit, arithmetic-coded, truncated, rotated)
             is decoded by Pillow right there, exactly as the Pillow path would.
    device   one batched `torchvision.io.decode_jpeg(list, device=...)` call. One bad file fails a
             whole batched call, so on failure each file is retried alone, and a file the device
             decoder refuses falls back to Pillow — whose verdict (image or `unreadable` + reason)
             is the one the Pillow path gives.
    resize   antialiased bilinear/bicubic (torch.nn.functional.interpolate, like Pillow's resize),
             letterbox on the background colour or centre crop, images of one size resized together.

Each ok row records which decoder made it (sf.cache.schema.DECODERS); the store's fingerprint does
not change: both decoders implement the same preprocessing, to within the cosine the GPU bench reports.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sf.cache import schema as S
from sf.extract.images import BadImage, ImagePrep, check_size, load_image, read_bytes

DECODER_CHOICES = ("auto", "pillow", "torchvision")
# torchvision 0.29 deprecates its decoders in favour of TorchCodec, which has no batched nvJPEG call yet.
DEPRECATED = "The image decoding and encoding capabilities of TorchVision"


def resolve_decoder(decoder: str, device: torch.device) -> str:
    """auto: the device decoder on CUDA (it frees the CPUs), Pillow on CPU (draft decoding is faster there)."""
    if decoder == "auto":
        return "torchvision" if device.type == "cuda" else "pillow"
    return decoder


def device_decoder_name(device: torch.device) -> str:
    return "nvjpeg" if device.type == "cuda" else "libjpeg"


# ---------------------------------------------------------------- JPEG header (runs in the workers)


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int


def jpeg_header(data: bytes) -> JpegHeader | None:
    """The header of a JPEG the device decoder is meant for, or None: leave this file to Pillow."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    if data.rstrip(b"\0\r\n ")[-2:] != b"\xff\xd9":
        return None  # no end-of-image marker: truncated (Pillow names it) or trailing oddities
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        m = data[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        seg = data[i + 4 : i + 2 + length]
        if m == 0xE1 and seg[:6] == b"Exif\0\0" and _exif_orientation(seg[6:]) not in (None, 1):
            return None  # Pillow applies the rotation (nvJPEG does not)
        if m == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12 and seg[11] != 1:
            return None  # Adobe RGB/CMYK/YCCK colour transform
        if m in (0xC0, 0xC1, 0xC2):  # baseline, extended, progressive (Huffman)
            if len(seg) < 6:
                return None
            precision, height, width, components = seg[0], (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
            if precision != 8 or components not in (1, 3) or not height or not width:
                return None
            return JpegHeader(width=width, height=height)
        if 0xC3 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            return None  # lossless, hierarchical or arithmetic-coded
        if m == 0xDA:
            return None  # scan before any frame header
        i += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 of a TIFF-structured EXIF block, or None."""
    try:
        end = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack(end + "I", tiff[4:8])
        (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
        for k in range(count):
            entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, kind = struct.unpack(end + "HH", entry[:4])
            if tag == 0x0112:
                return struct.unpack(end + "H", entry[8:10])[0] if kind == 3 else None
    except (KeyError, struct.error):
        return None
    return None


# ---------------------------------------------------------------- reading (DataLoader workers)


class ReadRows(torch.utils.data.Dataset):
    """Row j -> (j, bytes for the device or None, Pillow-decoded array or None, status, reason, decoder)."""

    def __init__(self, images: list, prep: ImagePrep, max_pixels: int):
        self.images, self.prep, self.max_pixels = images, prep, max_pixels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, j: int):
        return (j, *read_row(self.images[j], self.prep, self.max_pixels))


def read_row(source, prep: ImagePrep, max_pixels: int):
    """source: a path, the file's bytes, None (no image) or a BadImage already known -> (bytes, array, status,
    reason, decoder)."""
    if source is None:
        return None, None, S.STATUS_NO_IMAGE, "", ""
    try:
        if isinstance(source, BadImage):
            raise source
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else read_bytes(source)
        if not data:
            raise BadImage("empty file (0 bytes)")
        head = jpeg_header(data)
        if head is None:
            return None, load_image(data, prep, max_pixels), S.STATUS_OK, "", "pillow"
        check_size(head.width, head.height, max_pixels)
        return data, None, S.STATUS_OK, "", ""
    except BadImage as e:
        return None, None, S.STATUS_UNREADABLE, str(e), ""
    except Exception as e:  # a decoder bug must cost one row, not the run
        return None, None, S.STATUS_UNREADABLE, f"unexpected {type(e).__name__}: {str(e)[:160]}", ""


def collate_read(rows):
    """A batch as two tensors — every JPEG's bytes end to end (`spans` says where each file is), and the
    pixels Pillow decoded (`slots`) — because a worker sends each tensor through its own shared-memory file:
    one per file would cost hundreds of file descriptors per batch."""
    spans, slots, files, arrays, at = [], [], [], [], 0
    for r in rows:
        spans.append(None if r[1] is None else (at, at + len(r[1])))
        if r[1] is not None:
            files.append(r[1])
            at += len(r[1])
        slots.append(None if r[2] is None else len(arrays))
        if r[2] is not None:
            arrays.append(r[2])
    return {"idx": [r[0] for r in rows], "status": [r[3] for r in rows], "reason": [r[4] for r in rows],
            "decoder": [r[5] for r in rows], "spans": spans, "slots": slots,
            "data": torch.frombuffer(bytearray(b"".join(files)), dtype=torch.uint8) if files else None,
            "pixels": torch.from_numpy(np.stack(arrays)) if arrays else None}


# ---------------------------------------------------------------- decoding on the device (main process)


class DeviceDecoder:
    """Batch of read rows -> the decoded-batch dict the forward queue takes (images on the device)."""

    def __init__(self, prep: ImagePrep, device: torch.device, max_pixels: int):
        self.prep, self.device, self.max_pixels = prep, device, max_pixels
        self.name = device_decoder_name(device)
        self.background = torch.tensor(prep.background, dtype=torch.uint8, device=device).view(3, 1, 1)

    def __call__(self, batch: dict) -> dict:
        status, reason, decoder = list(batch["status"]), list(batch["reason"]), list(batch["decoder"])
        files = [(k, batch["data"][a:b]) for k, span in enumerate(batch["spans"]) if span is not None for a, b in [span]]
        squares: dict[int, torch.Tensor] = {}
        if batch["pixels"] is not None:
            pixels = batch["pixels"].to(self.device, non_blocking=True)
            squares.update((k, pixels[s]) for k, s in enumerate(batch["slots"]) if s is not None)
        images: dict[int, torch.Tensor] = {}
        for (k, data), img in zip(files, self.decode([d for _, d in files])):
            if img is not None:
                images[k] = img
                decoder[k] = self.name
                continue
            try:  # the device decoder refused this file: Pillow decides
                arr = load_image(data.numpy().tobytes(), self.prep, self.max_pixels)
                squares[k] = torch.from_numpy(arr.copy()).to(self.device, non_blocking=True)
                decoder[k] = "pillow"
            except BadImage as e:
                status[k], reason[k] = S.STATUS_UNREADABLE, str(e)
        squares.update(self.fit(images))
        ok = sorted(squares)
        return {"idx": batch["idx"], "ok": ok, "images": torch.stack([squares[k] for k in ok]) if ok else None,
                "status": status, "reason": reason, "decoder": [d if s == S.STATUS_OK else "" for d, s in zip(decoder, status)]}

    def decode(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """(3, H, W) uint8 on the device per file, None where the device decoder fails on it."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not datas:
            return []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=DEPRECATED, category=DeprecationWarning)
            try:
                return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device))
            except RuntimeError:
                pass  # one bad file fails the whole batched call: find it
            out = []
            for d in datas:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def fit(self, images: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Resize + letterbox/crop to (S, S, 3) uint8; images of one size are resized in one call."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, img in images.items():
            by_size.setdefault(tuple(img.shape[1:]), []).append(k)
        out = {}
        for (h, w), ks in by_size.items():
            squares = fit_square_tensor(torch.stack([images[k] for k in ks]), self.prep, self.background)
            out.update(zip(ks, squares))
        return out


def fit_square_tensor(x: torch.Tensor, prep: ImagePrep, background: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> (B, S, S, 3) uint8: sf.extract.images.fit_square on a device."""
    s, (h, w) = prep.image_size, x.shape[2:]
    mode = prep.interpolation
    if prep.fit == "pad":
        k = s / max(w, h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
    else:
        k = s / min(w, h)
        nw, nh = max(s, round(w * k)), max(s, round(h * k))
    if (nh, nw) != (h, w):
        y = torch.nn.functional.interpolate(x.float(), size=(nh, nw), mode=mode, antialias=True, align_corners=False)
        x = y.round_().clamp_(0, 255).to(torch.uint8)
    if prep.fit == "pad":
        canvas = background.expand(x.shape[0], 3, s, s).clone()
        top, left = (s - nh) // 2, (s - nw) // 2
        canvas[:, :, top : top + nh, left : left + nw] = x
    else:
        top, left = (nh - s) // 2, (nw - s) // 2
        canvas = x[:, :, top : top + s, left : left + s]
    return canvas.permute(0, 2, 3, 1).contiguous()
