"""Image codecs (PNG, JPEG) with errors that name the file."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from tracklift.errors import DataError


def decode_image(data: bytes, url: str) -> np.ndarray:
    """Decode PNG/JPEG bytes. Colour → (H, W, 3) uint8; 16-bit grey → (H, W) uint16; 8-bit grey → uint8."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.array(im)
                if arr.dtype != np.uint16:
                    if arr.min() < 0 or arr.max() > 65535:
                        raise DataError(url, "integer image outside the 16-bit range")
                    arr = arr.astype(np.uint16)
                return arr
            if im.mode == "L":
                return np.array(im)
            return np.array(im.convert("RGB"))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(url, f"corrupt or unreadable image ({e})") from None


def encode_png(arr: np.ndarray) -> bytes:
    """Encode (H, W, 3) uint8, (H, W) uint8 or (H, W) uint16 as PNG."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        im = Image.fromarray(arr)  # 16-bit greyscale PNG
    elif arr.dtype == np.uint8:
        im = Image.fromarray(arr)
    else:
        raise TypeError(f"encode_png takes uint8 or uint16, got {arr.dtype}")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_jpeg(arr: np.ndarray, quality: int = 92) -> bytes:
    """Encode (H, W, 3) uint8 as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resize_color(color: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image (bilinear), e.g. ScanNet colour to the depth size."""
    if color.shape[1] == width and color.shape[0] == height:
        return color
    return np.array(Image.fromarray(color).resize((width, height), Image.BILINEAR))


def resize_nearest(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize for label/depth maps (no interpolation across boundaries)."""
    h, w = arr.shape[:2]
    if w == width and h == height:
        return arr
    ys = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.int64)
    xs = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.int64)
    return arr[ys[:, None], xs[None, :]]
