"""Safe image decoding and the exact preprocessing recorded in every store.

Every way a file can be bad becomes a `BadImage` with a short reason; the extract job turns that
into an `unreadable` row instead of dying. Decoding runs inside DataLoader workers (or Ray actors).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sf.cache.content import NotAnImageFile, check_regular_file

# A truncated file must be reported, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (~ 0.25 GiB of RGBA)
WHITE = (255, 255, 255)
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
FITS = ("pad", "crop")


class BadImage(Exception):
    """A file that cannot become a model input; str(e) is the reason stored in the row."""


@dataclass(frozen=True)
class ImagePrep:
    """Everything that turns an image file into the tensor the backbone sees (stored as JSON)."""

    image_size: int = 224
    # pad: letterbox the whole product onto a white square (nothing is cut off);
    # crop: fill the square and centre-crop the longer side.
    fit: str = "pad"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    background: tuple[int, int, int] = WHITE  # alpha is composited on it; padding uses it too
    resize: str = "PIL.Image.resize (antialiased), JPEG draft decoding to >= image_size"
    colour: str = "EXIF orientation applied; RGBA/LA/P+transparency composited on background; " \
        "CMYK/palette/grayscale -> RGB; 16-bit scaled by 1/257"
    scale: str = "x/255 then (x - mean) / std"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["background"] = list(self.mean), list(self.std), list(self.background)
        return d


def read_bytes(path) -> bytes:
    """A file's bytes, or BadImage with the same reasons `open_checked` gives (the GPU path reads bytes only)."""
    regular_file(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise unreadable_reason(e) from None
    if not data:
        raise BadImage("empty file (0 bytes)")
    return data


def regular_file(path) -> None:
    """Refuse special files (FIFO, device) and files over the read cap before open(): a FIFO blocks open()
    and /dev/zero never ends."""
    try:
        check_regular_file(path)
    except NotAnImageFile as e:
        raise BadImage(str(e)) from None


def unreadable_reason(e: OSError) -> BadImage:
    if isinstance(e, FileNotFoundError):
        return BadImage("file not found")
    if isinstance(e, IsADirectoryError):
        return BadImage("is a folder, not a file")
    if isinstance(e, PermissionError):
        return BadImage("permission denied")
    return BadImage(f"cannot read file ({e.strerror or e})")


def open_checked(source, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open lazily (header only) and refuse empty, non-image and oversized files.

    `source`: a path, or the file's bytes (read by a worker, or by Ray's read_binary_files)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise BadImage("empty file (0 bytes)")
        path = io.BytesIO(source)
    else:
        path = source
        regular_file(path)
        try:
            with open(path, "rb") as fh:
                if not fh.read(1):
                    raise BadImage("empty file (0 bytes)")
        except OSError as e:
            raise unreadable_reason(e) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise BadImage(f"too large, refused as a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImage(f"corrupt image header ({_short(e)})") from None
    try:
        check_size(*img.size, max_pixels)
    except BadImage:
        img.close()
        raise
    return img


def check_size(w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise BadImage(f"too large: {w}x{h} = {w * h:,} pixels > limit {max_pixels:,} (--max-pixels)")
    if w < 1 or h < 1:
        raise BadImage(f"empty image ({w}x{h})")


def to_rgb(img: Image.Image, background=WHITE) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, with transparency composited on `background`."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_depth_to_l(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    a = np.asarray(img)
    if img.mode == "F":
        a = np.nan_to_num(a.astype(np.float64))
        a = a * 255.0 if a.max(initial=0) <= 1.0 and a.min(initial=0) >= 0 else _stretch(a)
    else:
        a = a.astype(np.float64)
        a = a / 257.0 if a.min(initial=0) >= 0 and a.max(initial=0) <= 65535 else _stretch(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min(initial=0)), float(a.max(initial=0))
    return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


def fit_square(img: Image.Image, prep: ImagePrep) -> Image.Image:
    s = prep.image_size
    w, h = img.size
    resample = INTERPOLATIONS[prep.interpolation]
    if prep.fit == "pad":
        k = s / max(w, h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        img = img.resize((nw, nh), resample)
        canvas = Image.new("RGB", (s, s), prep.background)
        canvas.paste(img, ((s - nw) // 2, (s - nh) // 2))
        return canvas
    k = s / min(w, h)
    nw, nh = max(s, round(w * k)), max(s, round(h * k))
    img = img.resize((nw, nh), resample)
    left, top = (nw - s) // 2, (nh - s) // 2
    return img.crop((left, top, left + s, top + s))


def load_image(source, prep: ImagePrep, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """File (path or bytes) -> (S, S, 3) uint8 in the store's preprocessing; raises BadImage with the reason."""
    img = open_checked(source, max_pixels)
    try:
        with img:
            if img.format == "JPEG":
                # DCT-domain downscaling: large JPEGs decode several times faster, still >= S pixels.
                img.draft(None, (prep.image_size, prep.image_size))
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # malformed EXIF: keep the stored orientation rather than lose the image
                pass
            rgb = to_rgb(img, prep.background)
            return np.asarray(fit_square(rgb, prep), dtype=np.uint8)
    except BadImage:
        raise
    except Image.DecompressionBombError as e:
        raise BadImage(f"too large, refused as a possible decompression bomb ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise BadImage(f"truncated or corrupt image data ({_short(e)})") from None


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


def image_extensions() -> set[str]:
    """File extensions Pillow can decode (lower case, with the dot)."""
    return {ext.lower() for ext in Image.registered_extensions()}
