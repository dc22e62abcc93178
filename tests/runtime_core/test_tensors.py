"""mlfn.runtime.codecs.tensors: which JSON values feed which dtype, and JSON out."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlfn.runtime.codecs.tensors import Port, dumps, loads
from mlfn.runtime.dtypes import BY_NAME
from mlfn.runtime.errors import RequestError
from mlfn.runtime.spec import TensorSpec


def port(dtype: str, shape=("n",)) -> Port:
    return Port.of(TensorSpec("x", "tensor", BY_NAME[dtype], shape))


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        ("float32", [1, 2.5, 3], [1.0, 2.5, 3.0]),
        ("float16", [0.5, 65504], [0.5, 65504.0]),
        ("float64", [1e-300], [1e-300]),
        ("int8", [-128, 127.0], [-128, 127]),
        ("uint64", [0, 18446744073709551615], [0, 18446744073709551615]),
        ("int64", [-9223372036854775808, 9223372036854775807], [-9223372036854775808, 9223372036854775807]),
        ("bool", [True, False, 1, 0], [True, False, True, False]),
        ("string", ["a", "é"], ["a", "é"]),
        ("float32", [], []),
        ("string", [], []),
    ],
)
def test_values_that_fit(dtype, values, expected):
    got = port(dtype).from_json(values)
    assert got.dtype == BY_NAME[dtype].numpy
    assert got.tolist() == expected


@pytest.mark.parametrize(
    ("dtype", "values", "words"),
    [
        ("float32", ["1.5"], ["not numeric", "numbers written as strings"]),
        ("float32", [{"a": 1}], ["not numeric", "object values"]),
        ("float32", [[1, 2], [3]], ["ragged", "inhomogeneous shape after 1 dimensions"]),
        ("int32", [1.5], ["must be integers", "fractions such as 1.5"]),
        ("uint8", [-1, 2], ["out of range 0..255", "from -1 to 2"]),
        ("int8", [200.0], ["out of range -128..127"]),
        ("uint64", [2**64], ["not numeric", "beyond 64 bits"]),
        ("uint64", [-1, 2**64 - 1], ["out of range"]),
        ("bool", [2], ["booleans"]),
        ("string", [1, 2], ["must be strings", "integers"]),
        # issue 19: booleans feed BOOL inputs only, and what reaches the model is finite
        ("float32", [1, 2.5, True], ["must be numbers, not booleans", "true or false among the values"]),
        ("float32", [[True, 3.5], [1.4, 0.2]], ["must be numbers, not booleans"]),
        ("float32", [True, False], ["must be numbers, not booleans", "got booleans"]),
        ("int64", [1, False], ["must be numbers, not booleans"]),
        ("string", ["a", True], ["must be strings, not booleans"]),
        # numpy writes numbers among strings as text ("0"): refused, not fed
        ("string", [0, "a"], ["must be strings", "numbers among the strings"]),
        ("string", [["a", "b"], ["c", 1.5]], ["must be strings", "numbers among the strings"]),
        ("float32", [[1.0, 3.5e38]], ["must be finite", "3.5e+38 at [0, 1], beyond float32's range"]),
        ("float32", [1.2345678901234568e39], ["must be finite", "beyond float32's range"]),
        ("float16", [70000], ["must be finite", "70000 at [0], beyond float16's range of ±65504"]),
        ("int32", [2**40], ["out of range -2147483648..2147483647"]),
    ],
)
def test_values_that_do_not_fit(dtype, values, words):
    with pytest.raises(RequestError) as caught:
        port(dtype).from_json(values)
    assert caught.value.message.startswith("input 'x': ")
    assert caught.value.details["input"] == "x"
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_check_takes_bytes_as_utf8_text_and_refuses_other_bytes():
    got = port("string").check(np.array([b"caf\xc3\xa9"], dtype=object))
    assert got.tolist() == ["café"]
    with pytest.raises(RequestError, match="not UTF-8"):
        port("string").check(np.array([b"\xff"], dtype=object))


def test_dumps_handles_numpy_nan_bytes_and_int_keys():
    doc = {"a": np.array([[1.5, np.nan]], np.float32), "b": np.array(["x"], dtype=object),
           "c": {0: np.float32(0.25)}, "d": np.arange(6).reshape(2, 3)[:, 1], "e": b"\x00"}
    assert orjson.loads(dumps(doc)) == {"a": [[1.5, None]], "b": ["x"], "c": {"0": 0.25}, "d": [1, 4],
                                        "e": {"b64": "AA=="}}


def test_loads_error_names_the_place():
    with pytest.raises(RequestError) as caught:
        loads(b'{"a": tru}')
    assert "line 1 column" in caught.value.message
    assert caught.value.details["received"] == '{"a": tru}'
