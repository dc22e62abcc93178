"""Open Inference Protocol v2 through InferenceService: metadata, JSON and binary tensors, errors.

Binary requests are built, and responses parsed, by tritonclient's own HTTP client code
(`generate_request_body` / `parse_response_body`), so the wire format is the one real clients speak;
the HTTP transport itself is tested with the app (tests of the server).
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from mlfn.runtime.dtypes import BY_NAME
from mlfn.runtime.errors import RequestError

from .conftest import DTYPE_NAMES
from .test_model import dtype_feeds


def infer_json(service, doc, headers=None):
    reply = service.v2_infer(service.name, orjson.dumps(doc), headers or {"content-type": "application/json"})
    assert reply.status == 200
    assert reply.content_type == "application/json"
    return orjson.loads(reply.body)


def test_server_and_model_metadata(services):
    service = services["iris"]
    meta = service.v2_server_metadata()
    assert meta["name"] == "mlfn" and isinstance(meta["version"], str) and "binary_tensor_data" in meta["extensions"]
    assert service.v2_model_metadata("iris") == {
        "name": "iris",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output_label", "datatype": "INT64", "shape": [-1]},
                    {"name": "output_probability", "datatype": "BYTES", "shape": [-1]}],
    }
    with pytest.raises(RequestError) as caught:
        service.v2_model_metadata("other")
    assert caught.value.status == 404


def test_json_infer_every_dtype_equals_onnxruntime(services, direct):
    feeds = dtype_feeds()
    inputs = [{"name": n, "shape": list(v.shape), "datatype": BY_NAME[n[2:]].v2, "data": v.tolist()}
              for n, v in feeds.items()]
    got = infer_json(services["dtypes"], {"id": "req-1", "inputs": inputs})
    want = direct("dtypes", feeds)
    assert got["model_name"] == "dtypes" and got["model_version"] == "1" and got["id"] == "req-1"
    assert [o["name"] for o in got["outputs"]] == list(want)
    for output in got["outputs"]:
        expected = want[output["name"]]
        assert output["datatype"] == BY_NAME[output["name"][2:]].v2
        assert output["shape"] == list(expected.shape)
        data = np.array(output["data"], dtype=expected.dtype).reshape(output["shape"])  # data is flat
        np.testing.assert_array_equal(data, expected)


def test_flat_data_and_output_filter(services, direct):
    doc = {"inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
                      {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [[2], [3]]}],
           "outputs": [{"name": "total"}]}
    got = infer_json(services["pair"], doc)
    assert "id" not in got
    assert got["outputs"] == [{"name": "total", "datatype": "FP32", "shape": [2], "data": [6.0, 15.0]}]


def test_zipmap_output_is_bytes_of_json(services, direct, iris_features):
    rows = iris_features[:2]
    doc = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": rows.tolist()}]}
    got = {o["name"]: o for o in infer_json(services["iris"], doc)["outputs"]}
    want = direct("iris", {"X": rows})
    assert got["output_label"]["data"] == want["output_label"].tolist()
    probabilities = got["output_probability"]
    assert probabilities["datatype"] == "BYTES" and probabilities["shape"] == [2]
    decoded = [{int(k): v for k, v in orjson.loads(text).items()} for text in probabilities["data"]]
    assert decoded == [pytest.approx(p) for p in want["output_probability"]]


def triton_inputs(feeds, binary=True):
    inputs = []
    for name, value in feeds.items():
        datatype = BY_NAME[name[2:]].v2 if name.startswith("x_") else {"float32": "FP32", "int64": "INT64"}[
            value.dtype.name]
        item = triton.InferInput(name, list(value.shape), datatype)
        item.set_data_from_numpy(value, binary_data=binary)
        inputs.append(item)
    return inputs


def triton_call(service, inputs, outputs=None, request_id=""):
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs,
                                                                         request_id=request_id)
    headers = {} if json_size is None else {"inference-header-content-length": str(json_size)}
    reply = service.v2_infer(service.name, body, headers)
    length = reply.headers.get("inference-header-content-length")
    return reply, triton.InferenceServerClient.parse_response_body(
        reply.body, header_length=None if length is None else int(length))


def test_binary_round_trip_with_the_triton_client_every_dtype(services, direct):
    feeds = dtype_feeds()
    feeds["x_string"] = np.array([["héllo", "a,b"], ["", "x" * 300]], dtype=object)
    reply, result = triton_call(services["dtypes"], triton_inputs(feeds), request_id="bin-1")
    assert reply.content_type == "application/octet-stream"
    assert result.get_response()["id"] == "bin-1"
    want = direct("dtypes", feeds)
    for name in DTYPE_NAMES:
        got = result.as_numpy(f"y_{name}")
        if name == "string":
            assert got.tolist() == [[s.encode() for s in row] for row in want["y_string"].tolist()]
        else:
            assert got.dtype == want[f"y_{name}"].dtype
            np.testing.assert_array_equal(got, want[f"y_{name}"])


def test_binary_output_per_output_and_json_inputs(services):
    feeds = {"a": np.array([[1, 2, 3]], np.float32), "b": np.array([[2]], np.int64)}
    outputs = [triton.InferRequestedOutput("scaled", binary_data=True),
               triton.InferRequestedOutput("total", binary_data=False)]
    reply, result = triton_call(services["pair"], triton_inputs(feeds, binary=False), outputs)
    np.testing.assert_array_equal(result.as_numpy("scaled"), [[2, 4, 6]])
    np.testing.assert_array_equal(result.as_numpy("total"), [6])
    header = orjson.loads(reply.body[: int(reply.headers["inference-header-content-length"])])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 12}
    assert header["outputs"][1]["data"] == [6.0]


def test_zipmap_output_in_binary(services, iris_features):
    _, result = triton_call(services["iris"], [_iris_input(iris_features[:3])])
    texts = result.as_numpy("output_probability")
    assert texts.shape == (3,)
    assert set(orjson.loads(texts[0])) == {"0", "1", "2"}


def _iris_input(rows):
    item = triton.InferInput("X", list(rows.shape), "FP32")
    item.set_data_from_numpy(rows, binary_data=True)
    return item


def _binary_body(header: dict, *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), {"inference-header-content-length": str(len(head))}


@pytest.mark.parametrize(
    ("model", "doc", "words"),
    [
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
         ["input 'a'", "datatype must be FP32", "'FP64'"]),
        ("pair", {"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]},
         ["unknown input 'z'", "a (float32[batch, 3])"]),
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
         ["missing input 'b'"]),
        ("pair", {"inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]},
                             {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]}]},
         ["input 'a'", "shape [2, 3] holds 6 elements", "3 elements"]),
        ("pair", {"inputs": [{"name": "a", "shape": [1, -3], "datatype": "FP32", "data": [1, 2, 3]}]},
         ["input 'a'", "non-negative integers"]),
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32"}]}, ["input 'a'", '"data" is missing']),
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": ["x", "y", "z"]}]},
         ["input 'a'", "strings such as 'x'"]),
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                             {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
         ["given twice"]),
        ("pair", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                             {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [1]}],
                  "outputs": [{"name": "nope"}]},
         ["unknown output 'nope'", "scaled, total"]),
        ("pair", {"instances": [[1, 2, 3]]}, ['"inputs"', "'instances'"]),
        # the protocol's data is an array: a bare value is refused even where the shape holds one element
        ("pair", {"inputs": [{"name": "a", "shape": [1, 1], "datatype": "FP32", "data": 5}]},
         ["input 'a'", '"data" must be a list of values', "int 5"]),
        ("pair", {"id": 5, "inputs": []}, ['"id" must be a string']),
        ("iris", {"inputs": [{"name": "X", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]},
         ["input 'X'", "dimension 1 must be 4"]),
    ],
)
def test_bad_json_requests(services, model, doc, words):
    with pytest.raises(RequestError) as caught:
        services[model].v2_infer(model, orjson.dumps(doc), {"content-type": "application/json"})
    assert caught.value.status == 400
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_bad_binary_requests(services):
    service = services["iris"]
    header = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}
    body, headers = _binary_body(header, np.ones(3, np.float32).tobytes())
    with pytest.raises(RequestError, match="binary_data_size must fit"):
        service.v2_infer("iris", body, headers)
    header["inputs"][0]["parameters"]["binary_data_size"] = 12
    body, headers = _binary_body(header, np.ones(3, np.float32).tobytes())
    with pytest.raises(RequestError, match=r"needs 16 bytes.*binary_data_size 12"):
        service.v2_infer("iris", body, headers)
    header["inputs"][0]["parameters"]["binary_data_size"] = 16
    body, headers = _binary_body(header, np.ones(4, np.float32).tobytes(), b"extra")
    with pytest.raises(RequestError, match="5 bytes of binary data follow"):
        service.v2_infer("iris", body, headers)
    with pytest.raises(RequestError, match="Inference-Header-Content-Length"):
        service.v2_infer("iris", body, {"inference-header-content-length": "99999"})
    with pytest.raises(RequestError, match="Inference-Header-Content-Length"):
        service.v2_infer("iris", body, {"inference-header-content-length": "ten"})


def test_bad_bytes_elements(services):
    service = services["dtypes"]
    feeds = dtype_feeds(1)
    inputs = [{"name": n, "shape": list(v.shape), "datatype": BY_NAME[n[2:]].v2, "data": v.tolist()}
              for n, v in feeds.items() if n != "x_string"]
    for raw, words in [
        (struct.pack("<I", 1) + b"a" + struct.pack("<I", 9) + b"b", "truncated"),
        (struct.pack("<I", 1) + b"a" + struct.pack("<I", 1) + b"\xff", "not UTF-8"),
        (struct.pack("<I", 1) + b"a", "holds 2 elements"),
    ]:
        string = {"name": "x_string", "shape": [1, 2], "datatype": "BYTES",
                  "parameters": {"binary_data_size": len(raw)}}
        body, headers = _binary_body({"inputs": [*inputs, string]}, raw)
        with pytest.raises(RequestError, match=words):
            service.v2_infer("dtypes", body, headers)


def test_bfloat16_is_refused_clearly(tmp_path):
    from onnx import TensorProto, helper

    from mlfn.runtime.service import InferenceService

    from .conftest import graph_model, save

    x = helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["n"])
    service = InferenceService.from_dir(save(graph_model([helper.make_node("Identity", ["x"], ["y"])], [x], [y]),
                                             tmp_path / "bf16"), threads=1)
    doc = {"inputs": [{"name": "x", "shape": [1], "datatype": "BF16", "data": [1.0]}]}
    with pytest.raises(RequestError, match="bfloat16, which numpy and so this server cannot hold"):
        service.v2_infer(service.name, orjson.dumps(doc), {})


def test_wrong_content_type_is_415(services):
    with pytest.raises(RequestError) as caught:
        services["iris"].v2_infer("iris", b"1,2,3,4", {"content-type": "text/csv"})
    assert caught.value.status == 415


def test_sequence_of_tensors_output_is_plain_json(tmp_path):
    from onnx import TensorProto, helper

    from mlfn.runtime.service import InferenceService

    from .conftest import graph_model, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    seq = helper.make_tensor_sequence_value_info("parts", TensorProto.FLOAT, None)
    model = graph_model([helper.make_node("SequenceConstruct", ["x", "x"], ["parts"])], [x], [seq])
    service = InferenceService.from_dir(save(model, tmp_path / "seq"), threads=1)
    assert service.v2_model_metadata("seq")["outputs"] == [{"name": "parts", "datatype": "BYTES", "shape": [-1]}]
    doc = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
    got = orjson.loads(service.v2_infer("seq", orjson.dumps(doc), {}).body)["outputs"][0]
    assert got["datatype"] == "BYTES" and got["shape"] == [2]
    assert [orjson.loads(t) for t in got["data"]] == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    v1 = orjson.loads(service.v1_predict("seq", b'{"instances": [1, 2, 3]}', {}).body)
    assert v1 == {"predictions": [[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]]}
