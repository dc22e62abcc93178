"""SageMaker `/invocations` through InferenceService: JSON in three shapes, text/csv in and out, 415."""

from __future__ import annotations

import io
import json

import numpy as np
import orjson
import pytest

from mlfn.runtime.errors import RequestError

JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}


def invoke(service, body, headers):
    reply = service.invocations(body, headers)
    assert reply.status == 200
    return reply


def test_json_v1_bare_rows_and_v2_bodies(services, direct, iris_features):
    service = services["iris"]
    rows = iris_features[[0, 60, 120]]
    want = direct("iris", {"X": rows})["output_label"].tolist()
    for doc in ({"instances": rows.tolist()}, rows.tolist(), {"inputs": rows.tolist()}):
        got = orjson.loads(invoke(service, orjson.dumps(doc), JSON).body)["predictions"]
        assert [p["output_label"] for p in got] == want
    v2 = {"inputs": [{"name": "X", "shape": [3, 4], "datatype": "FP32", "data": rows.reshape(-1).tolist()}]}
    got = orjson.loads(invoke(service, orjson.dumps(v2), JSON).body)
    assert got["model_name"] == "iris"
    assert got["outputs"][0]["data"] == want


def test_csv_in_json_out(services, direct, iris_features):
    rows = iris_features[[0, 60, 120]]
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode() + b"\n"
    reply = invoke(services["iris"], body, CSV)
    assert reply.content_type == "application/json"
    got = orjson.loads(reply.body)["predictions"]
    assert [p["output_label"] for p in got] == direct("iris", {"X": rows})["output_label"].tolist()


def test_csv_in_csv_out_for_a_single_output_model(services):
    reply = invoke(services["fails"], b"1,2,3\n4,5,6\r\n", {**CSV, "accept": "text/csv"})
    assert reply.content_type == "text/csv"
    assert reply.body == b"1,2,3\n4,5,6\n"
    as_json = invoke(services["fails"], b"1,2,3\n", {**CSV, "accept": "application/json"})
    assert orjson.loads(as_json.body) == {"predictions": [[1.0, 2.0, 3.0]]}


def test_csv_out_is_json_when_the_model_has_several_outputs(services):
    reply = invoke(services["iris"], b"5.1,3.5,1.4,0.2\n", {**CSV, "accept": "text/csv"})
    assert reply.content_type == "application/json"


def test_csv_out_for_json_in(services):
    reply = invoke(services["fails"], b'{"instances": [[1.5, 2, 3]]}', {**JSON, "accept": "text/csv"})
    assert reply.body == b"1.5,2,3\n"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
         ["input 'X'", "no header", "'sepal_length' on line 1, column 1"]),
        (b"5.1,3.5,1.4,0.2\n5.1,3.5,x,0.2\n", ["'x' on line 2, column 3"]),
        (b"5.1,3.5,1.4,0.2\n5.1,3.5\n", ["2 values on line 2 after lines of 4"]),
        (b"5.1,3.5,1.4\n", ["input 'X'", "dimension 1 must be 4", "[1, 3]"]),
        (b"\n", ["empty"]),
        (b"\xff\xfe1,2", ["not UTF-8"]),
    ],
)
def test_bad_csv_names_the_line(services, body, words):
    with pytest.raises(RequestError) as caught:
        services["iris"].invocations(body, CSV)
    assert caught.value.status == 400
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_csv_for_a_multi_input_model_is_415(services):
    with pytest.raises(RequestError) as caught:
        services["pair"].invocations(b"1,2,3\n", CSV)
    assert caught.value.status == 415
    assert "one numeric 1-D or 2-D input" in caught.value.message and "a (float32[batch, 3])" in caught.value.message


def test_other_content_types_are_415_naming_the_accepted_ones(services):
    with pytest.raises(RequestError) as caught:
        services["iris"].invocations(b"\x89PNG", {"content-type": "image/png"})
    assert caught.value.status == 415
    assert "'image/png'" in caught.value.message
    assert "application/json" in caught.value.message and "text/csv" in caught.value.message


def test_malformed_json_gives_the_position(services):
    with pytest.raises(RequestError) as caught:
        services["iris"].invocations(b'{"instances": [1, 2,, 3]}', JSON)
    assert "line 1 column 21 (char 20)" in caught.value.message
    assert caught.value.details["position"] == 20


def test_observer_sees_each_run(model_dirs):
    from mlfn.runtime.service import InferenceService

    seen: list[tuple[float, int]] = []
    service = InferenceService.from_dir(model_dirs["iris"], threads=1, observer=lambda s, n: seen.append((s, n)))
    service.invocations(b"5.1,3.5,1.4,0.2\n6,3,5,2\n", CSV)
    service.v1_predict("iris", b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', JSON)
    assert [n for _, n in seen] == [2, 1]
    assert all(s > 0 for s, _ in seen)


def test_float64_outputs_keep_full_precision_in_csv(tmp_path):
    from onnx import TensorProto, helper

    from mlfn.runtime.service import InferenceService

    from .conftest import graph_model, save

    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 2])
    service = InferenceService.from_dir(
        save(graph_model([helper.make_node("Identity", ["x"], ["y"])], [x], [y]), tmp_path / "f64"), threads=1)
    reply = service.invocations(b"0.1,1e-300\n", {**CSV, "accept": "text/csv"})
    assert np.loadtxt(reply.body.decode().splitlines(), delimiter=",").tolist() == [0.1, 1e-300]


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=allow_pickle)
    return out.getvalue()


def test_npy_in_and_out_as_the_sagemaker_sdk_numpy_serializers_speak(services, direct):
    rows = np.array([[1.5, 2, 3], [4, 5, 6]], np.float64)  # float64 in: cast to the input's float32
    reply = invoke(services["fails"], npy_bytes(rows), {"content-type": "application/x-npy",
                                                        "accept": "application/x-npy"})
    assert reply.content_type == "application/x-npy"
    got = np.load(io.BytesIO(reply.body), allow_pickle=False)
    np.testing.assert_array_equal(got, direct("fails", {"x": rows.astype(np.float32)})["y"])
    as_json = invoke(services["iris"], npy_bytes(rows[:, :2].repeat(2, axis=1)), {"content-type": "application/x-npy"})
    assert len(orjson.loads(as_json.body)["predictions"]) == 2


def test_accept_order_decides_the_answer_type(services):
    body = b"1,2,3\n"
    for accept, kind in [("application/json, text/csv", "application/json"), ("text/csv;q=0.9, */*", "text/csv"),
                         ("*/*", "application/json"), ("image/png", "application/json")]:
        assert invoke(services["fails"], body, {**CSV, "accept": accept}).content_type == kind


def test_npy_refuses_pickles_and_garbage(services):
    pickled = npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for body in (pickled, b"not npy"):
        with pytest.raises(RequestError) as caught:
            services["iris"].invocations(body, {"content-type": "application/x-npy"})
        assert caught.value.status == 400
        assert "input 'X'" in caught.value.message and "no pickles" in caught.value.message
    with pytest.raises(RequestError) as caught:
        services["pair"].invocations(npy_bytes(np.ones((1, 3))), {"content-type": "application/x-npy"})
    assert caught.value.status == 415 and "exactly one input" in caught.value.message


def test_small_and_large_csv_bodies_parse_alike(services):
    from mlfn.runtime.codecs import csv

    port = services["iris"].model.ports["X"]
    rows = np.random.default_rng(7).normal(size=(2000, 4)).astype(np.float32)
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n"
    assert len(text) > csv.SMALL_BODY
    large = csv.decode(text.encode(), port)
    small = np.concatenate([csv.decode(chunk.encode(), port) for chunk in text.splitlines()])
    np.testing.assert_array_equal(large, rows)
    np.testing.assert_array_equal(small, rows)
    with pytest.raises(RequestError, match=r"'x' on line 1201, column 2"):
        csv.decode(text.replace(text.splitlines()[1200], "1,x,3,4").encode(), port)


@pytest.mark.parametrize(("dims", "takes_text"), [(["n"], True), (["n", 1], True), (["n", 2], False)])
def test_raw_text_feeds_a_string_input_whose_dimensions_may_all_be_one(tmp_path, dims, takes_text):
    """`text/plain` and a bare JSON string are one row, shaped for the input: `[1]` for string[n], `[1, 1]` for
    string[n, 1]; an input that needs two strings per row takes neither."""
    from onnx import TensorProto, helper

    from mlfn.runtime.service import InferenceService

    from .conftest import graph_model, save

    x = helper.make_tensor_value_info("x", TensorProto.STRING, dims)
    y = helper.make_tensor_value_info("y", TensorProto.STRING, dims)
    service = InferenceService.from_dir(
        save(graph_model([helper.make_node("Identity", ["x"], ["y"])], [x], [y]), tmp_path / "text"), threads=1)
    text = "line one\nline two, é"
    if not takes_text:
        with pytest.raises(RequestError) as caught:
            service.invocations(text.encode(), {"content-type": "text/plain"})
        assert caught.value.status == 415 and "one string input taking one text per row" in caught.value.message
        with pytest.raises(RequestError, match="got a string"):
            service.v1_predict("text", json.dumps(text).encode(), JSON)
        return
    row = [text] if len(dims) == 1 else [[text]]
    for reply in (service.invocations(text.encode(), {"content-type": "text/plain; charset=utf-8"}),
                  service.invocations(json.dumps(text).encode(), JSON),
                  service.v1_predict("text", json.dumps(text).encode(), JSON)):
        assert reply.status == 200
        assert json.loads(reply.body) == {"predictions": row}
