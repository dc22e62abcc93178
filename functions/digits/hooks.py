"""Hooks of the `digits` function: a PNG of a handwritten digit in, the digit and its probabilities out.

`preprocess` turns an uploaded PNG (any size; gray, gray+alpha, RGB, RGBA or palette; 8 bits per sample;
not interlaced) into the model's input, the way scikit-learn's digits were made:

1. decode the PNG (stdlib `zlib` plus numpy for the five scanline filters; no imaging library);
2. convert to gray (ITU-R BT.601 luma), compositing transparent pixels over white paper;
3. stretch the contrast to the full range and make ink the bright part (a light border means dark ink on
   light paper, which is inverted);
4. shrink to 8x8 by area averaging (each output pixel is the mean of the input area it covers);
5. scale to the training range: 0 (no ink) to 16 (full ink), as `pixels` float32[1, 64].

Any other content type returns None, so JSON requests (`{"instances": [[64 numbers 0..16]]}`) reach the
model through the default codec. A body that is not a PNG this can read raises ValueError, which the
runtime answers with HTTP 400 and the message.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

CONTENT_TYPES = ("image/png",)  # what preprocess reads, for the OpenAPI document (JSON goes to the default codec)
INPUT = "pixels"
SIDE = 8  # the model sees 8x8 pixels
INK_MAX = 16.0  # scikit-learn's digits count ink in 4x4 blocks of a 32x32 bitmap: 0..16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
WAVEFRONT_CELLS = 1 << 23  # int16 cells of scratch per block of rows the Average/Paeth path unfilters at once

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
COLOR_NAMES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ---------------------------------------------------------------- hooks


def preprocess(body: bytes, content_type: str) -> Mapping[str, np.ndarray] | None:
    """The model's feed for a PNG body; None for content this hook does not handle (JSON, CSV, ...)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "image/png" and not body.startswith(PNG_SIGNATURE):
        return None
    return {INPUT: to_features(decode_png(body))}


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


# ---------------------------------------------------------------- PNG decoding


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each chunk up to IEND, checking lengths and CRCs."""
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("invalid PNG: the file ends inside a chunk header (truncated upload?)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        name = kind.decode("latin-1")
        if not kind.isalpha():
            raise ValueError(f"invalid PNG: bad chunk type {name!r} at byte {pos}")
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"invalid PNG: chunk {name} runs past the end of the file (truncated upload?)")
        body = data[pos + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack_from(">I", data, end - 4)[0]:
            raise ValueError(f"invalid PNG: CRC mismatch in chunk {name} (corrupted data)")
        yield kind, body
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("invalid PNG: no IEND chunk (truncated upload?)")


def _header(body: bytes) -> tuple[int, int, int]:
    """Check IHDR; returns (width, height, colour type)."""
    if len(body) != 13:
        raise ValueError(f"invalid PNG: IHDR holds {len(body)} bytes, expected 13")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise ValueError(
            f"unsupported PNG: {width}x{height} pixels; expected 1 to {MAX_SIDE} pixels a side "
            f"and at most {MAX_PIXELS:,} in all"
        )
    if color not in CHANNELS:
        raise ValueError(f"invalid PNG: colour type {color}")
    if depth != 8:
        raise ValueError(
            f"unsupported PNG: {depth}-bit {COLOR_NAMES[color]}; expected 8 bits per sample (re-save it as 8-bit)"
        )
    if compression != 0 or filtering != 0:
        raise ValueError(f"invalid PNG: compression method {compression}, filter method {filtering}; expected 0, 0")
    if interlace != 0:
        raise ValueError("unsupported PNG: interlaced (Adam7); expected a non-interlaced PNG (re-save it without)")
    return width, height, color


def decode_png(data: bytes) -> np.ndarray:
    """Pixels of a PNG as uint8 `(height, width, channels)`; palette images come out as RGB or RGBA."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG: the body does not start with the PNG signature")
    chunks = _chunks(data)
    kind, body = next(chunks, (b"", b""))
    if kind != b"IHDR":
        raise ValueError("invalid PNG: the first chunk is not IHDR")
    width, height, color = _header(body)
    palette, alpha, idat = b"", b"", bytearray()
    for kind, body in chunks:
        if kind == b"IDAT":
            idat += body
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            alpha = body
        elif kind[0] & 0x20 == 0 and kind != b"IEND":  # an unknown critical chunk must not be ignored
            raise ValueError(f"unsupported PNG: critical chunk {kind.decode('latin-1')}")
    bpp = CHANNELS[color]
    expected = height * (1 + width * bpp)
    inflater = zlib.decompressobj()
    try:  # never inflate more than the header allows: a small upload must not become gigabytes
        raw = inflater.decompress(bytes(idat), expected)
        extra = b"" if inflater.eof else inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise ValueError(f"invalid PNG: the image data does not decompress ({exc})") from None
    if len(raw) < expected:
        raise ValueError(f"invalid PNG: {len(raw):,} bytes of image data, expected {expected:,} (truncated?)")
    if extra:
        raise ValueError(f"invalid PNG: more image data than {width}x{height} {COLOR_NAMES[color]} pixels hold")
    pixels = unfilter(np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp), width, bpp)
    return _expand_palette(pixels, palette, alpha) if color == 3 else pixels


def _expand_palette(indices: np.ndarray, palette: bytes, alpha: bytes) -> np.ndarray:
    if not palette or len(palette) % 3:
        raise ValueError("invalid PNG: a palette image needs a PLTE chunk of RGB triples")
    colors = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    if int(indices.max()) >= len(colors):
        raise ValueError(f"invalid PNG: palette index {int(indices.max())} but only {len(colors)} colours")
    if alpha:
        opacity = np.full(len(colors), 255, np.uint8)
        opacity[: len(alpha)] = np.frombuffer(alpha[: len(colors)], np.uint8)
        colors = np.column_stack([colors, opacity])
    return np.asarray(colors[indices[:, :, 0]])


def unfilter(rows: np.ndarray, width: int, bpp: int) -> np.ndarray:
    """Undo the per-scanline filters: `rows` is `(height, 1 + width*bpp)` with the filter type first."""
    height = rows.shape[0]
    kinds = rows[:, 0]
    if kinds.size and int(kinds.max()) > 4:
        bad = int(np.argmax(kinds > 4))
        raise ValueError(f"invalid PNG: unknown filter type {int(kinds[bad])} on row {bad}; expected 0 to 4")
    data = rows[:, 1:].reshape(height, width, bpp)
    if not kinds.size or int(kinds.max()) <= 2:
        return _unfilter_rows(data, kinds)
    out = np.empty_like(data)
    block = _block_rows(width, bpp)
    above = np.zeros((width, bpp), np.uint8)
    for start in range(0, height, block):
        part = slice(start, start + block)
        out[part] = _unfilter_wavefront(data[part], kinds[part], above)
        above = out[part][-1]
    return out


def _unfilter_rows(data: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """None, Sub and Up only: each row at once (Sub is a running sum along the row, modulo 256)."""
    out = np.empty_like(data)
    above = np.zeros(data.shape[1:], np.uint8)
    for y, kind in enumerate(kinds.tolist()):
        if kind == 0:
            out[y] = data[y]
        elif kind == 1:
            out[y] = np.cumsum(data[y], axis=0, dtype=np.uint8)
        else:
            out[y] = data[y] + above
        above = out[y]
    return out


def _block_rows(width: int, bpp: int) -> int:
    """Rows per wavefront block, so its scratch (rows x (rows + width) x bpp int16) stays bounded."""
    rows = int((-width + (width * width + 4 * WAVEFRONT_CELLS / bpp) ** 0.5) / 2)
    return max(rows, 1)


def _predict(kind: int, left: np.ndarray, up: np.ndarray, corner: np.ndarray) -> np.ndarray:
    """What PNG filter `kind` predicts from the left, upper and upper-left bytes (int16)."""
    if kind == 0:
        return np.zeros_like(left)
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return np.asarray((left + up) >> 1)
    pa, pb, pc = np.abs(up - corner), np.abs(left - corner), np.abs(left + up - 2 * corner)
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))


def _unfilter_wavefront(data: np.ndarray, kinds: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Any filter types, vectorized along anti-diagonals.

    A pixel depends on its left, upper and upper-left neighbours, so all pixels on one anti-diagonal
    (row + column constant) can be reconstructed together. The block is stored skewed, `grid[d, r]` being
    padded row r, padded column d - r (row 0 is the row above the block, column 0 zeros), which turns each
    anti-diagonal and its neighbours into plain slices.
    """
    rows, width, bpp = data.shape
    grid = np.zeros((rows + width + 1, rows + 1, bpp), np.int16)
    grid[1 : width + 1, 0] = above
    raw = np.zeros_like(grid)
    for r in range(1, rows + 1):
        raw[r + 1 : r + 1 + width, r] = data[r - 1]
    kind = np.concatenate([[0], kinds])[:, None]
    present = set(kinds.tolist())
    base = max(present)  # computed for every pixel; the other filter types present overwrite their rows
    masks = [(k, kind == k) for k in sorted(present - {base})]
    for d in range(2, rows + width + 1):
        r0, r1 = max(1, d - width), min(rows, d - 1)
        sel = slice(r0, r1 + 1)
        left = grid[d - 1, sel]
        up = grid[d - 1, r0 - 1 : r1]
        corner = grid[d - 2, r0 - 1 : r1]
        predictor = _predict(base, left, up, corner)
        for k, mask in masks:
            predictor = np.where(mask[sel], _predict(k, left, up, corner), predictor)
        grid[d, sel] = (raw[d, sel] + predictor) & 0xFF
    out = np.empty_like(data)
    for r in range(1, rows + 1):
        out[r - 1] = grid[r + 1 : r + 1 + width, r]
    return out
