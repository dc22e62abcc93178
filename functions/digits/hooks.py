"""Hooks of the `digits` function: a PNG or JPEG of a handwritten digit in, the digit and its probabilities out.

`preprocess` turns an uploaded picture (any size, any mode Pillow reads: gray, RGB, palette, with or without
alpha) into the model's input, the way scikit-learn's digits were made:

1. decode it with Pillow (the folder's requirements.txt brings it into the image's own layer);
2. convert to gray (ITU-R BT.601 luma), compositing transparent pixels over white paper;
3. stretch the contrast to the full range and make ink the bright part (a light border means dark ink on
   light paper, which is inverted);
4. shrink to 8x8 by area averaging (each output pixel is the mean of the input area it covers);
5. scale to the training range: 0 (no ink) to 16 (full ink), as `pixels` float32[1, 64].

Any other content type returns None, so JSON requests (`{"instances": [[64 numbers 0..16]]}`) reach the
model through the default codec. A body that is not a PNG or JPEG Pillow can read, or one larger than
MAX_SIDE a side or MAX_PIXELS in all (checked from the header, before any pixel is decoded: no decompression
bombs), raises ValueError, which the runtime answers with HTTP 400 and the message.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

CONTENT_TYPES = ("image/png",)  # what preprocess reads, for the OpenAPI document (JSON goes to the default codec)
INPUT = "pixels"
SIDE = 8  # the model sees 8x8 pixels
INK_MAX = 16.0  # scikit-learn's digits count ink in 4x4 blocks of a 32x32 bitmap: 0..16
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG"}
FORMATS = ("PNG", "JPEG")
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ---------------------------------------------------------------- hooks


def preprocess(body: bytes, content_type: str) -> Mapping[str, np.ndarray] | None:
    """The model's feed for a PNG or JPEG body; None for content this hook does not handle (JSON, CSV, ...)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES and not body.startswith(tuple(SIGNATURES)):
        return None
    return {INPUT: to_features(decode_image(body))}


def postprocess(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """`{"predictions": [{"digit": 3, "probabilities": {"0": ..., "9": ...}}]}`, one entry per image."""
    labels = np.asarray(outputs["label"]).reshape(-1)
    probabilities = np.asarray(outputs["probabilities"], dtype=np.float64).reshape(len(labels), -1)
    return {
        "predictions": [
            {"digit": int(label), "probabilities": {str(i): round(float(p), 6) for i, p in enumerate(row)}}
            for label, row in zip(labels, probabilities, strict=True)
        ]
    }


# ---------------------------------------------------------------- decoding


def decode_image(data: bytes) -> np.ndarray:
    """PNG or JPEG bytes -> `(h, w, c)` uint8 pixels: c is 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
            width, height = image.size
            if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
                raise ValueError(f"unsupported {image.format}: {width}x{height} pixels; expected 1 to {MAX_SIDE} "
                                 f"pixels a side and at most {MAX_PIXELS:,} in all")
            image.load()
    except UnidentifiedImageError:
        raise ValueError("not a picture this function reads: expected a PNG or JPEG") from None
    except (OSError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"invalid picture: {exc} (truncated or corrupted upload?)") from None
    if image.mode == "P" or "transparency" in image.info:
        image = image.convert("RGBA")
    mode = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA"}.get(image.mode, "RGB")
    pixels = np.asarray(image.convert(mode) if mode != image.mode else image, dtype=np.uint8)
    return pixels.reshape(height, width, -1)


# ---------------------------------------------------------------- picture -> model input


def to_features(image: np.ndarray) -> np.ndarray:
    """`(h, w, c)` uint8 pixels -> float32[1, 64] ink in 0..16, as the model was trained on."""
    gray = to_gray(image)
    low, high = float(gray.min()), float(gray.max())
    if high - low < 1.0:
        raise ValueError("the image is blank (every pixel has the same colour); expected a digit on plain paper")
    level = (gray - low) / (high - low)
    border = np.concatenate([level[0], level[-1], level[:, 0], level[:, -1]])
    ink = 1.0 - level if float(border.mean()) > 0.5 else level
    small = area_resize(ink, SIDE, SIDE)
    return (small * INK_MAX).astype(np.float32).reshape(1, SIDE * SIDE)


def to_gray(image: np.ndarray) -> np.ndarray:
    """float32 gray 0..255 of `(h, w, c)` uint8 pixels; alpha composites over white."""
    channels = image.shape[2]
    if channels >= 3:
        red, green, blue = LUMA
        gray = image[:, :, 0] * red + image[:, :, 1] * green + image[:, :, 2] * blue
    else:
        gray = image[:, :, 0].astype(np.float32)
    if channels in (2, 4):
        alpha = image[:, :, -1] * np.float32(1 / 255)
        gray = gray * alpha + np.float32(255) * (1 - alpha)
    return np.asarray(gray, dtype=np.float32)


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """`(size_out, size_in)` matrix: row i holds the share of each input pixel in output pixel i."""
    edges = np.arange(size_out + 1, dtype=np.float64) * size_in / size_out
    starts = np.arange(size_in, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], starts[None, :] + 1) - np.maximum(edges[:-1, None], starts[None, :])
    return np.asarray(np.clip(overlap, 0.0, None) * (size_out / size_in))


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D image by area averaging (exact for any ratio, up or down)."""
    rows = area_weights(image.shape[0], height).astype(np.float32)
    cols = area_weights(image.shape[1], width).astype(np.float32)
    return np.asarray(rows @ image.astype(np.float32) @ cols.T)
