"""KServe v1 `:predict` through InferenceService: rows, columns, several inputs and outputs, ZipMap, errors."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlfn.runtime.errors import RequestError

JSON = {"content-type": "application/json"}


def predict(service, doc, name=None, headers=JSON):
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    reply = service.v1_predict(name or service.name, body, headers)
    assert reply.status == 200
    assert reply.content_type == "application/json"
    return orjson.loads(reply.body)


def test_instances_of_a_single_input_model_equal_onnxruntime(services, direct, iris_features):
    rows = iris_features[::30]
    got = predict(services["iris"], {"instances": rows.tolist()})["predictions"]
    want = direct("iris", {"X": rows})
    assert len(got) == len(rows)
    assert [p["output_label"] for p in got] == want["output_label"].tolist()
    for prediction, probabilities in zip(got, want["output_probability"], strict=True):
        assert {int(k): v for k, v in prediction["output_probability"].items()} == pytest.approx(probabilities)
        # float32 values survive JSON exactly
        assert all(np.float32(v) == np.float32(probabilities[int(k)])
                   for k, v in prediction["output_probability"].items())


def test_multi_input_instances_are_objects_and_predictions_objects_per_output(services, direct):
    doc = {"instances": [{"a": [1, 2, 3], "b": [2]}, {"a": [0.5, 0, -1], "b": [3]}]}
    got = predict(services["pair"], doc)["predictions"]
    want = direct("pair", {"a": np.array([[1, 2, 3], [0.5, 0, -1]], np.float32), "b": np.array([[2], [3]])})
    assert got == [
        {"scaled": want["scaled"][0].tolist(), "total": float(want["total"][0])},
        {"scaled": want["scaled"][1].tolist(), "total": float(want["total"][1])},
    ]


def test_columnar_inputs(services, direct):
    got = predict(services["pair"], {"inputs": {"a": [[1, 2, 3]], "b": [[4]]}})["predictions"]
    assert got == [{"scaled": [4.0, 8.0, 12.0], "total": 6.0}]
    single = predict(services["iris"], {"inputs": [[5.1, 3.5, 1.4, 0.2]]})["predictions"]
    assert single[0]["output_label"] == 0
    keyed = predict(services["iris"], {"inputs": {"X": [[5.1, 3.5, 1.4, 0.2]]}})["predictions"]
    assert keyed == single


def test_single_output_predictions_are_the_rows(services):
    got = predict(services["dtypes"], {"instances": [_row(1), _row(2)]})["predictions"]
    assert got[0]["y_float32"] == [1.0, 1.0]
    assert got[1]["y_string"] == ["2", "2"]
    assert got[1]["y_bool"] == [True, True]


def _row(value: int) -> dict[str, list]:
    from .conftest import DTYPE_NAMES

    out = {}
    for name in DTYPE_NAMES:
        v = str(value) if name == "string" else bool(value) if name == "bool" else value
        out[f"x_{name}"] = [v, v]
    return out


def test_a_model_without_a_batch_dimension_runs_each_instance(services):
    got = predict(services["fixed"], {"instances": [[1, 2, 3], [4, 5, 6]]})["predictions"]
    assert got == [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]]


def test_model_metadata_and_name_check(services):
    assert services["iris"].v1_model("iris") == {"name": "iris", "ready": True}
    with pytest.raises(RequestError) as caught:
        services["iris"].v1_model("nope")
    assert caught.value.status == 404
    with pytest.raises(RequestError) as caught:
        services["iris"].v1_predict("nope", b"{}", JSON)
    assert caught.value.status == 404
    assert "'nope' not found" in caught.value.message and "'iris'" in caught.value.message


@pytest.mark.parametrize(
    ("model", "body", "words"),
    [
        ("iris", b'{"instances": [[1, 2, 3, 4],', ["malformed JSON", "line 1 column 29", "char 28"]),
        ("iris", b'{"rows": []}', ['"instances"', "'rows'"]),
        ("iris", b'{"instances": {"X": 1}}', ['"instances" must be a list']),
        ("iris", b'{"instances": []}', ["empty"]),
        ("iris", b'{"instances": [[1, 2, 3]]}', ["input 'X'", "dimension 1 must be 4", "float32[?, 4]", "[1, 3]"]),
        ("iris", b'{"instances": [[1, 2, 3, 4], [1, 2]]}', ["input 'X'", "ragged", "float32[?, 4]"]),
        ("iris", b'{"instances": [["a", "b", "c", "d"]]}', ["input 'X'", "not numeric", "strings such as 'a'"]),
        ("iris", b'{"instances": [[1, null, 3, 4]]}', ["input 'X'", "null"]),
        ("iris", b'{"instances": [[[1, 2, 3, 4]]]}', ["input 'X'", "wrong rank 3"]),
        ("pair", b'{"instances": [[1, 2, 3]]}', ["instance 0", "object keyed by input name", "a, b"]),
        ("pair", b'{"instances": [{"a": [1, 2, 3]}]}', ["instance 0", "missing input 'b'"]),
        ("pair", b'{"instances": [{"a": [1, 2, 3], "b": [1], "c": 1}]}', ["instance 0", "unknown input 'c'"]),
        ("pair", b'{"inputs": {"a": [[1, 2, 3]], "bee": [[1]]}}', ["unknown input 'bee'"]),
        ("pair", b'{"inputs": [[1, 2, 3]]}', ['"inputs" must be an object keyed by input name']),
        ("dtypes", b'{"inputs": {"x_string": [[1, 2]]}}', ["input 'x_string'", "must be strings", "integers"]),
    ],
)
def test_bad_requests_say_what_and_where(services, model, body, words):
    with pytest.raises(RequestError) as caught:
        services[model].v1_predict(model, body, JSON)
    assert caught.value.status == 400
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_an_empty_bare_list_names_the_body_not_instances(services):
    """`mlfn invoke --data '[]'` sends `[]`: the answer must not speak of an "instances" key the caller never sent."""
    with pytest.raises(RequestError) as caught:
        services["iris"].v1_predict("iris", b"[]", JSON)
    assert caught.value.status == 400
    assert caught.value.message == "the request body (a JSON list of rows) is empty; expected at least one row"


def test_wrong_content_type_is_415(services):
    with pytest.raises(RequestError) as caught:
        services["iris"].v1_predict("iris", b"1,2,3,4", {"content-type": "text/csv"})
    assert caught.value.status == 415
    assert "text/csv" in caught.value.message and "application/json" in caught.value.message


def test_json_without_content_type_and_curl_default_are_read(services):
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    for kind in (None, "application/x-www-form-urlencoded", "application/json; charset=utf-8"):
        headers = {} if kind is None else {"content-type": kind}
        assert predict(services["iris"], body, headers=headers)["predictions"][0]["output_label"] == 0


def test_nan_and_infinity_are_written_as_null(services):
    got = predict(services["pair"], {"instances": [{"a": [2e38, 2e38, 2e38], "b": [10]}]})["predictions"]
    assert got[0]["scaled"] == [None, None, None]  # float32 overflow to inf: JSON has no infinity
    assert got[0]["total"] is None


def test_columnar_inputs_of_a_model_without_a_batch_dimension_are_one_prediction(services):
    assert predict(services["fixed"], {"inputs": [1, 2, 3]})["predictions"] == [[-1.0, -2.0, -3.0]]
    assert predict(services["fixed"], {"inputs": {"x": [1, 2, 3]}})["predictions"] == [[-1.0, -2.0, -3.0]]
    with pytest.raises(RequestError, match="unknown input 'y'"):
        services["fixed"].v1_predict("fixed", b'{"inputs": {"y": [1, 2, 3]}}', JSON)


def test_concurrent_requests_get_their_own_answers(services, direct, iris_features):
    from concurrent.futures import ThreadPoolExecutor

    service = services["iris"]
    want = direct("iris", {"X": iris_features})["output_label"].tolist()

    def one(i: int) -> int:
        body = orjson.dumps({"instances": iris_features[i : i + 1].tolist()})
        return predict(service, body)["predictions"][0]["output_label"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(one, range(len(iris_features))))
    assert got == want
