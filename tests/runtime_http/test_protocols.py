"""Every route of every protocol, over HTTP against a real server, compared with onnxruntime run directly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Server, ort_run

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.5, 2.25, 8.0]]
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


def test_every_response_carries_a_request_id_and_echoes_the_callers(doubler: httpx.Client) -> None:
    fresh = {doubler.get("/ping").headers["x-request-id"] for _ in range(3)}
    assert len(fresh) == 3 and all(len(r) == 32 for r in fresh)
    assert doubler.get("/v2", headers={"x-request-id": "trace-42"}).headers["x-request-id"] == "trace-42"
    assert doubler.get("/nowhere", headers={"x-request-id": "trace-43"}).headers["x-request-id"] == "trace-43"
    # a value that could smuggle anything into logs is replaced by a fresh id
    assert doubler.get("/ping", headers={"x-request-id": "a b"}).headers["x-request-id"] != "a b"


def test_sagemaker_ping_is_200_with_an_empty_body(doubler: httpx.Client) -> None:
    response = doubler.get("/ping")
    assert response.status_code == 200 and response.content == b""
    head = doubler.head("/ping")
    assert head.status_code == 200 and head.content == b""


def test_oip_v2_health_and_metadata(doubler: httpx.Client) -> None:
    assert doubler.get("/v2/health/live").json() == {"live": True}
    assert doubler.get("/v2/health/ready").json() == {"ready": True}
    server = doubler.get("/v2").json()
    assert server["name"] == "mlfn" and "binary_tensor_data" in server["extensions"]
    model = doubler.get("/v2/models/doubler").json()
    assert model["name"] == "doubler"
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert doubler.get("/v2/models/doubler/versions/1").json() == model
    assert doubler.get("/v2/models/doubler/ready").status_code == 200
    assert doubler.get("/v2/models/doubler/versions/1/ready").json()["ready"] is True
    index = doubler.post("/v2/repository/index").json()
    assert index == [{"name": "doubler", "state": "READY", "version": "1"}]


def test_unknown_model_and_version_are_404_naming_them(doubler: httpx.Client) -> None:
    for path in ("/v2/models/other", "/v2/models/other/ready", "/v1/models/other"):
        response = doubler.get(path)
        assert response.status_code == 404, path
        assert "'other'" in response.json()["error"] and response.json()["expected"] == "doubler"
    response = doubler.get("/v2/models/doubler/versions/7/ready")
    assert response.status_code == 404 and response.json()["available"] == ["1"]
    response = doubler.post("/v2/models/doubler/versions/7/infer", json={"inputs": []})
    assert response.status_code == 404


def test_kserve_v1_model_and_predict_equal_onnxruntime(iris: httpx.Client, models: dict[str, Path]) -> None:
    assert iris.get("/v1/models").json() == {"models": ["iris"]}
    assert iris.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    response = iris.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    labels, probabilities = ort_run(models["iris"], {"input": np.array(IRIS_ROWS, np.float32)})
    assert [p["output_label"] for p in predictions] == list(labels)
    for served, direct in zip(predictions, probabilities, strict=True):  # type: ignore[call-overload]
        assert served["output_probability"] == pytest.approx(direct, rel=1e-6)


def test_oip_v2_infer_json_equals_onnxruntime(doubler: httpx.Client, models: dict[str, Path]) -> None:
    request = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                       "data": [v for row in ROWS for v in row]}]}
    for path in ("/v2/models/doubler/infer", "/v2/models/doubler/versions/1/infer"):
        response = doubler.post(path, json=request)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "doubler" and body["id"] == "r1"
        (output,) = body["outputs"]
        (direct,) = ort_run(models["doubler"], {"x": np.array(ROWS, np.float32)})
        assert output["name"] == "y" and output["shape"] == [2, 4] and output["datatype"] == "FP32"
        assert output["data"] == np.asarray(direct).ravel().tolist()


def test_oip_v2_binary_tensors_both_ways(doubler: httpx.Client) -> None:
    x = np.array(ROWS, np.float32)
    header = json.dumps({
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }).encode()
    response = doubler.post("/v2/models/doubler/infer", content=header + x.tobytes(), headers={
        "content-type": "application/octet-stream", "inference-header-content-length": str(len(header))})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 32
    y = np.frombuffer(response.content[length:], np.float32).reshape(2, 4)
    np.testing.assert_array_equal(y, x * 2)


def test_sagemaker_invocations_accept_v1_v2_and_csv(iris: httpx.Client, models: dict[str, Path]) -> None:
    labels, _ = ort_run(models["iris"], {"input": np.array(IRIS_ROWS, np.float32)})
    v1 = iris.post("/invocations", json={"instances": IRIS_ROWS}).json()["predictions"]
    assert [p["output_label"] for p in v1] == list(labels)
    csv_body = "".join(",".join(map(str, row)) + "\n" for row in IRIS_ROWS)
    csv = iris.post("/invocations", content=csv_body, headers={"content-type": "text/csv"})
    assert csv.status_code == 200, csv.text
    assert [p["output_label"] for p in csv.json()["predictions"]] == list(labels)
    v2 = iris.post("/invocations", json={"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32",
                                                     "data": IRIS_ROWS}], "outputs": [{"name": "output_label"}]})
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == list(labels)
    # POST / is the same operation, for Function URL users who call the bare URL
    assert iris.post("/", json={"instances": IRIS_ROWS}).json()["predictions"] == v1


def test_image_upload_through_the_hook(digits_server: Server, models: dict[str, Path]) -> None:
    png = (models["digits"] / "examples" / "3.png").read_bytes()
    with httpx.Client(base_url=digits_server.url, timeout=30) as client:
        response = client.post("/invocations", content=png, headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["digit"] == 3
        broken = client.post("/invocations", content=b"\x89PNG\r\n\x1a\nbroken", headers={"content-type": "image/png"})
        assert broken.status_code == 400 and "error" in broken.json()


def test_index_describes_the_server(doubler: httpx.Client) -> None:
    index = doubler.get("/").json()
    assert index["name"] == "doubler" and index["ready"] is True
    assert index["protocols"] == {"kserve_v1": "POST /v1/models/doubler:predict",
                                  "oip_v2": "POST /v2/models/doubler/infer", "sagemaker": "POST /invocations"}


def test_openapi_documents_every_route_with_the_models_example(doubler: httpx.Client) -> None:
    document = doubler.get("/openapi.json").json()
    assert document["info"]["title"] == "mlfn: doubler"
    paths = document["paths"]
    for path in ("/v1/models/{name}:predict", "/v2/models/{name}/infer", "/invocations", "/ping", "/metrics",
                 "/v2/models/{name}/versions/{version}/infer"):
        assert path in paths, path
    infer_body = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    example = infer_body["application/json"]["example"]
    assert example["inputs"][0]["name"] == "x" and example["inputs"][0]["shape"] == [1, 4]
    assert "application/octet-stream" in infer_body
    assert set(paths["/invocations"]["post"]["requestBody"]["content"]) >= {"application/json", "text/csv"}
    docs = doubler.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_prometheus_metrics_count_requests_by_route_and_status(doubler: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = doubler.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.text) for sample in family.samples}

    infer = (("route", "/v2/models/{name}/infer"), ("status", "200"))
    missing = (("route", "/v2/models/{name}"), ("status", "404"))
    before = scrape()
    doubler.post("/v2/models/doubler/infer", json={"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                                               "data": list(range(12))}]})
    doubler.get("/v2/models/nope")
    after = scrape()
    assert after[("mlfn_requests_total", infer)] == before.get(("mlfn_requests_total", infer), 0) + 1
    assert after[("mlfn_requests_total", missing)] == before.get(("mlfn_requests_total", missing), 0) + 1
    assert after[("mlfn_request_duration_seconds_count", infer)] == after[("mlfn_requests_total", infer)]
    assert after[("mlfn_request_duration_seconds_bucket", (("le", "+Inf"), *infer))] == after[
        ("mlfn_requests_total", infer)]
    assert after[("mlfn_inference_duration_seconds_count", ())] == before[("mlfn_inference_duration_seconds_count",
                                                                          ())] + 1
    assert after[("mlfn_batch_rows_sum", ())] == before[("mlfn_batch_rows_sum", ())] + 3
    info = [labels for name, labels in after if name == "mlfn_model_info"]
    assert dict(info[0])["name"] == "doubler" and dict(info[0])["producer"] == "mlfn-tests"
    assert after[("mlfn_model_load_seconds", ())] > 0 and after[("mlfn_cold_start_seconds", ())] > 0
    assert ("process_resident_memory_bytes", ()) in after


def test_gzip_request_bodies_are_accepted(doubler: httpx.Client) -> None:
    import gzip

    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    response = doubler.post("/v2/models/doubler/infer", content=gzip.compress(body.encode()),
                            headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [2, 4, 6, 8]


def test_binary_header_length_is_checked(doubler: httpx.Client) -> None:
    response = doubler.post("/v2/models/doubler/infer", content=b"{}" + struct.pack("<f", 1.0), headers={
        "content-type": "application/octet-stream", "inference-header-content-length": "999"})
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]


def test_a_large_batch_equals_onnxruntime(iris: httpx.Client, models: dict[str, Path]) -> None:
    """Bodies over 64 KiB run on the thread pool rather than inline: same answer either way."""
    rows = (np.random.default_rng(7).random((4000, 4), np.float32) * 8).round(2)
    body = json.dumps({"instances": rows.tolist()})
    assert len(body) > 64 * 1024
    response = iris.post("/v1/models/iris:predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    labels, _ = ort_run(models["iris"], {"input": rows})
    assert [p["output_label"] for p in response.json()["predictions"]] == list(labels)
