"""functions/digits/hooks.py: PNG decoding, gray conversion, area resize, errors and the output shape."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from .conftest import FUNCTIONS

RNG = np.random.default_rng(7)


def picture(shape: tuple[int, ...]) -> np.ndarray:
    """Smooth gradients plus noise, so every filter type sees non-trivial neighbours."""
    y, x = np.indices(shape[:2])
    base = (3 * y + 5 * x) % 256
    if len(shape) == 3:
        base = base[:, :, None] + 40 * np.arange(shape[2])
    return ((base + RNG.integers(0, 24, shape)) % 256).astype(np.uint8)


def reference_unfilter(raw: bytes, height: int, width: int, bpp: int) -> np.ndarray:
    """The PNG specification's reconstruction, byte by byte, as the test oracle."""
    stride = width * bpp
    out = bytearray()
    above = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        row = bytearray(stride)
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = above[i]
            c = above[i - bpp] if i >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            row[i] = (line[i] + pred) & 0xFF
        out += row
        above = row
    return np.frombuffer(bytes(out), np.uint8).reshape(height, width, bpp)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_from_parts(header: bytes, *chunks: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + b"".join(chunks) + chunk(b"IEND", b"")


def ihdr(width: int, height: int, depth: int = 8, color: int = 0, interlace: int = 0) -> bytes:
    return struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["gray", "gray+alpha", "rgb", "rgba"])
@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4], ids=["none", "sub", "up", "average", "paeth"])
def test_decode_every_colour_type_and_filter(hooks: ModuleType, build_models: ModuleType, channels: int,
                                              kind: int) -> None:
    pixels = picture((13, 11, channels))
    png = build_models.encode_png(pixels, filters=kind, idat_size=50)  # several IDAT chunks
    decoded = hooks.decode_png(png)
    assert decoded.shape == (13, 11, channels)
    np.testing.assert_array_equal(decoded, pixels)


def test_decode_rows_with_mixed_filters(hooks: ModuleType, build_models: ModuleType) -> None:
    pixels = picture((40, 23, 3))
    kinds = [int(k) for k in RNG.integers(0, 5, 40)]
    np.testing.assert_array_equal(hooks.decode_png(build_models.encode_png(pixels, filters=kinds)), pixels)


@pytest.mark.parametrize(("height", "width", "bpp"), [(1, 1, 1), (5, 1, 4), (1, 9, 3), (17, 6, 2), (9, 31, 1)])
def test_unfilter_matches_the_specification(hooks: ModuleType, height: int, width: int, bpp: int) -> None:
    raw = RNG.integers(0, 256, (height, 1 + width * bpp), dtype=np.uint8)
    raw[:, 0] = RNG.integers(0, 5, height)
    expected = reference_unfilter(raw.tobytes(), height, width, bpp)
    np.testing.assert_array_equal(hooks.unfilter(raw, width, bpp), expected)


def test_unfilter_across_several_row_blocks(hooks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Average/Paeth images are reconstructed in blocks of rows; the row above each block must carry over."""
    monkeypatch.setattr(hooks, "WAVEFRONT_CELLS", 200)
    height, width, bpp = 23, 10, 3
    assert hooks._block_rows(width, bpp) < height // 2
    raw = RNG.integers(0, 256, (height, 1 + width * bpp), dtype=np.uint8)
    raw[:, 0] = np.resize([4, 3, 2, 1, 0, 4, 4], height)
    expected = reference_unfilter(raw.tobytes(), height, width, bpp)
    np.testing.assert_array_equal(hooks.unfilter(raw, width, bpp), expected)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
def test_decode_what_pillow_writes(hooks: ModuleType, mode: str) -> None:
    """Pillow (libpng-style adaptive filters, its own zlib stream) as an independent encoder."""
    source = Image.fromarray(picture((45, 38, 4)), "RGBA").convert(mode)
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    decoded = hooks.decode_png(buffer.getvalue())
    expected = np.asarray(source.convert(("RGB", "RGBA")[decoded.shape[2] - 3]) if mode == "P" else source)
    np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)


def test_palette_with_transparency(hooks: ModuleType, build_models: ModuleType) -> None:
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    palette = bytes([0, 0, 0, 255, 255, 255, 10, 20, 30])
    data = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in indices))
    png = png_from_parts(ihdr(2, 2, color=3), chunk(b"PLTE", palette), chunk(b"tRNS", b"\x00\x80"),
                         chunk(b"IDAT", data))
    decoded = hooks.decode_png(png)
    assert decoded.tolist() == [[[0, 0, 0, 0], [255, 255, 255, 128]], [[10, 20, 30, 255], [255, 255, 255, 128]]]


def test_unknown_ancillary_chunks_are_skipped(hooks: ModuleType) -> None:
    data = zlib.compress(b"\x00\x07\x09")
    png = png_from_parts(ihdr(2, 1), chunk(b"tEXt", b"Comment\x00hi"), chunk(b"IDAT", data))
    assert hooks.decode_png(png)[:, :, 0].tolist() == [[7, 9]]


# ---------------------------------------------------------------- bad uploads


def _valid(build_models: ModuleType) -> bytes:
    return bytes(build_models.encode_png(picture((6, 5))))


def _image(width: int, height: int, data: bytes, *extra: bytes, **header: int) -> bytes:
    return png_from_parts(ihdr(width, height, **header), *extra, chunk(b"IDAT", zlib.compress(data)))


CORRUPT = {  # what a client might send -> the part of the message that tells them what is wrong
    "signature": (lambda ok: b"GIF89a" + ok[6:], "not a PNG: the body does not start with the PNG signature"),
    "truncated-header": (lambda ok: ok[:40], "ends inside a chunk header"),
    "truncated-chunk": (lambda ok: ok[:50], "chunk IDAT runs past the end of the file"),
    "no-iend": (lambda ok: ok[:-12], "no IEND chunk"),
    "crc": (lambda ok: ok[:30] + bytes([ok[30] ^ 0xFF]) + ok[31:], "CRC mismatch in chunk IHDR"),
    "ihdr-first": (lambda ok: ok[:8] + chunk(b"IDAT", b"") + ok[8:], "the first chunk is not IHDR"),
    "16-bit": (lambda ok: _image(2, 2, b"\0" * 20, depth=16), "16-bit gray; expected 8 bits per sample"),
    "interlaced": (lambda ok: _image(2, 2, b"\0" * 6, interlace=1), "interlaced (Adam7)"),
    "zero-width": (lambda ok: png_from_parts(ihdr(0, 2)), "0x2 pixels"),
    "too-large": (lambda ok: png_from_parts(ihdr(9000, 9000)), "9000x9000 pixels; expected 1 to 8192 pixels a side"),
    "colour-type": (lambda ok: png_from_parts(ihdr(2, 2, color=5)), "colour type 5"),
    "zlib": (lambda ok: png_from_parts(ihdr(2, 2), chunk(b"IDAT", b"not zlib")), "does not decompress"),
    "short-data": (lambda ok: _image(2, 2, b"\0\1\1"), "3 bytes of image data, expected 6 (truncated?)"),
    "too-much-data": (lambda ok: _image(2, 2, b"\0" * 600), "more image data than 2x2 gray pixels hold"),
    "filter-type": (lambda ok: _image(2, 1, b"\x07\1\1"), "unknown filter type 7 on row 0; expected 0 to 4"),
    "no-palette": (lambda ok: _image(1, 1, b"\0\0", color=3), "a palette image needs a PLTE chunk"),
    "palette-index": (lambda ok: _image(1, 1, b"\0\5", chunk(b"PLTE", b"\0\0\0"), color=3),
                      "palette index 5 but only 1 colours"),
    "critical-chunk": (lambda ok: _image(1, 1, b"\0\0", chunk(b"ZZZZ", b"")), "critical chunk ZZZZ"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_png_raises_a_clear_value_error(hooks: ModuleType, build_models: ModuleType, case: str) -> None:
    make, message = CORRUPT[case]
    with pytest.raises(ValueError) as caught:
        hooks.decode_png(make(_valid(build_models)))
    assert message in str(caught.value)


def test_blank_picture_is_refused(hooks: ModuleType, build_models: ModuleType) -> None:
    png = build_models.encode_png(np.full((16, 16), 255, np.uint8))
    with pytest.raises(ValueError, match="the image is blank"):
        hooks.preprocess(png, "image/png")


# ---------------------------------------------------------------- picture -> features


@pytest.mark.parametrize(("height", "width"), [(8, 8), (32, 32), (24, 40), (13, 29), (5, 3), (1, 100), (100, 9)])
def test_area_resize_matches_block_means(hooks: ModuleType, height: int, width: int) -> None:
    """Reference: repeat every pixel 8 times along each axis, then each output pixel is the mean of one block."""
    image = RNG.random((height, width)).astype(np.float32)
    fine = np.repeat(np.repeat(image, 8, axis=0), 8, axis=1)
    expected = fine.reshape(8, height, 8, width).mean(axis=(1, 3))
    np.testing.assert_allclose(hooks.area_resize(image, 8, 8), expected, rtol=1e-5, atol=1e-5)


def test_gray_uses_luma_and_composites_alpha_over_white(hooks: ModuleType) -> None:
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128], [10, 200, 30, 255]]], np.uint8)
    gray = hooks.to_gray(rgba)
    a = 128 / 255
    expected = [0.299 * 255, 255.0, 255 * (1 - a), 0.299 * 10 + 0.587 * 200 + 0.114 * 30]
    np.testing.assert_allclose(gray[0], expected, rtol=1e-5)


def test_dark_ink_on_light_paper_and_light_ink_on_dark_give_the_same_features(hooks: ModuleType) -> None:
    ink = np.zeros((32, 32), np.uint8)
    ink[4:28, 12:20] = 255  # a "1"
    on_paper = hooks.to_features((255 - ink)[:, :, None])
    on_slate = hooks.to_features(ink[:, :, None])
    np.testing.assert_allclose(on_paper, on_slate)
    assert on_paper.shape == (1, 64) and on_paper.dtype == np.float32
    grid = on_paper.reshape(8, 8)
    assert grid[1:7, 3:5].min() == pytest.approx(16.0) and grid[:, :3].max() == 0.0


def test_digits_data_round_trips_through_a_png(hooks: ModuleType, build_models: ModuleType) -> None:
    """A held-out digit drawn 4x larger as a PNG comes back as its own 64 values (up to 8-bit rounding)."""
    split = build_models.digits_split()
    for row in split.x_test[:20]:
        png = build_models.encode_png(build_models.digit_picture(row, "gray", 32))
        features = hooks.preprocess(png, "image/png")["pixels"][0]
        stretched = (row - row.min()) / (row.max() - row.min()) * 16  # the hook stretches contrast to 0..16
        np.testing.assert_allclose(features, stretched, atol=0.05)


# ---------------------------------------------------------------- the hook contract


def test_preprocess_leaves_other_content_types_to_the_default_codec(hooks: ModuleType) -> None:
    assert hooks.preprocess(b'{"instances": [[0]]}', "application/json") is None
    assert hooks.preprocess(b"1,2,3", "text/csv") is None


def test_preprocess_reads_png_bytes_whatever_the_content_type_says(hooks: ModuleType) -> None:
    png = (FUNCTIONS / "digits" / "examples" / "3.png").read_bytes()
    for content_type in ("image/png", "IMAGE/PNG; charset=binary", "application/octet-stream",
                         "application/x-www-form-urlencoded"):
        feeds = hooks.preprocess(png, content_type)
        assert set(feeds) == {"pixels"} and feeds["pixels"].shape == (1, 64)


def test_postprocess_shape(hooks: ModuleType) -> None:
    probabilities = np.full((2, 10), 0.01, np.float32)
    probabilities[0, 3] = probabilities[1, 8] = 0.91
    out = hooks.postprocess({"label": np.array([3, 8], np.int64), "probabilities": probabilities})
    assert [p["digit"] for p in out["predictions"]] == [3, 8]
    assert list(out["predictions"][0]["probabilities"]) == [str(d) for d in range(10)]
    assert out["predictions"][1]["probabilities"]["8"] == pytest.approx(0.91)


@pytest.mark.parametrize("path", sorted((FUNCTIONS / "digits" / "examples").glob("*.png")), ids=lambda p: p.name)
def test_example_pngs_are_read_as_their_digit(hooks: ModuleType, path: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(FUNCTIONS / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip(["label", "probabilities"], session.run(None, hooks.preprocess(path.read_bytes(), "image/png")),
                       strict=True))
    assert hooks.postprocess(outputs)["predictions"][0]["digit"] == int(path.stem)
