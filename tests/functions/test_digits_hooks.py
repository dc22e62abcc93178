"""functions/digits/hooks.py: PNG and JPEG decoding (Pillow), gray, area resize, errors and the output shape."""

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


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_from_parts(header: bytes, *chunks: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + b"".join(chunks) + chunk(b"IEND", b"")


def ihdr(width: int, height: int, depth: int = 8, color: int = 0, interlace: int = 0) -> bytes:
    return struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def on_white(path: Path) -> Image.Image:
    """An example PNG composited over white paper (JPEG has no alpha)."""
    image = Image.open(path).convert("RGBA")
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, image).convert("RGB")


# ---------------------------------------------------------------- decoding (Pillow, from requirements.txt)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P"])
def test_decode_every_png_mode(hooks: ModuleType, mode: str) -> None:
    source = Image.fromarray(picture((45, 38, 4)), "RGBA").convert(mode)
    decoded = hooks.decode_image(encoded(source, "PNG"))
    assert decoded.dtype == np.uint8 and decoded.shape[:2] == (45, 38)
    wanted = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "P": "RGBA"}[mode]
    expected = np.asarray(source.convert(wanted)).reshape(decoded.shape)
    np.testing.assert_array_equal(decoded, expected)


def test_decode_what_the_build_script_writes(hooks: ModuleType, build_models: ModuleType) -> None:
    """mlfn's own PNG encoder (every filter type) as an independent writer."""
    for channels in (1, 2, 3, 4):
        pixels = picture((9, 11, channels))
        for kind in range(5):
            decoded = hooks.decode_image(build_models.encode_png(pixels, filters=kind))
            np.testing.assert_array_equal(decoded, pixels)


@pytest.mark.parametrize("path", sorted((FUNCTIONS / "digits" / "examples").glob("*.png")), ids=lambda p: p.name)
def test_jpeg_and_png_of_a_digit_give_the_same_prediction(hooks: ModuleType, path: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(FUNCTIONS / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    flat = on_white(path)
    answers = []
    for fmt, media in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        feeds = hooks.preprocess(encoded(flat, fmt, **({"quality": 95} if fmt == "JPEG" else {})), media)
        outputs = dict(zip(["label", "probabilities"], session.run(None, feeds), strict=True))
        answers.append(hooks.postprocess(outputs)["predictions"][0]["digit"])
    assert answers == [int(path.stem)] * 2


def test_jpeg_is_read_whatever_the_content_type_says(hooks: ModuleType) -> None:
    jpeg = encoded(on_white(FUNCTIONS / "digits" / "examples" / "3.png"), "JPEG")
    assert hooks.preprocess(jpeg, "application/octet-stream")["pixels"].shape == (1, 64)


# ---------------------------------------------------------------- bad uploads


def _valid_png() -> bytes:
    return encoded(Image.fromarray(picture((6, 5))), "PNG")


def _valid_jpeg() -> bytes:
    return encoded(Image.fromarray(picture((16, 16, 3))), "JPEG")


def _bomb() -> bytes:
    """A 4097x4097 gray PNG of zeros: 16.8 million pixels in a few KB."""
    rows = zlib.compress(b"\0" * (4097 * 4098), 9)
    return png_from_parts(ihdr(4097, 4097), chunk(b"IDAT", rows))


BAD = {  # what a client might send -> the part of the message that tells them what is wrong
    "gif": (lambda: b"GIF89a" + _valid_png()[6:], "not a picture this function reads: expected a PNG or JPEG"),
    "text-as-png": (lambda: b"hello", "not a picture this function reads"),
    "truncated-png": (lambda: _valid_png()[:60], "invalid picture"),
    "truncated-jpeg": (lambda: _valid_jpeg()[:200], "invalid picture"),
    "crc": (lambda: (lambda ok: ok[:30] + bytes([ok[30] ^ 0xFF]) + ok[31:])(_valid_png()), "expected a PNG or JPEG"),
    "zlib": (lambda: png_from_parts(ihdr(2, 2), chunk(b"IDAT", b"not zlib")), "invalid picture"),
    "too-large": (lambda: png_from_parts(ihdr(9000, 9000)), "9000x9000 pixels; expected 1 to 8192 pixels a side"),
    "bomb": (_bomb, "4097x4097 pixels; expected 1 to 8192 pixels a side and at most 16,777,216 in all"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_upload_raises_a_clear_value_error(hooks: ModuleType, case: str) -> None:
    make, message = BAD[case]
    with pytest.raises(ValueError) as caught:
        hooks.preprocess(make(), "image/png")
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
