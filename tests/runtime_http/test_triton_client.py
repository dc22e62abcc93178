"""The unmodified Triton HTTP client (tritonclient[http], pinned in tests/requirements.txt) against mlfn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import Server, ort_run

httpclient = pytest.importorskip("tritonclient.http")
X = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.5, 2.25, 8.0], [9, 8, 7, 6]], np.float32)


@pytest.fixture()
def client(doubler_server: Server) -> Iterator[Any]:
    triton = httpclient.InferenceServerClient(url=doubler_server.url.removeprefix("http://"))
    yield triton
    triton.close()


def test_health_and_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("doubler") and client.is_model_ready("doubler", "1")
    assert not client.is_model_ready("other")
    assert client.get_server_metadata()["name"] == "mlfn"
    metadata = client.get_model_metadata("doubler")
    assert metadata["inputs"][0]["name"] == "x" and metadata["versions"] == ["1"]
    assert client.get_model_repository_index()[0]["name"] == "doubler"
    config = client.get_model_config("doubler")
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert config["output"][0]["name"] == "y" and config["max_batch_size"] == 0


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_infer_with_json_and_binary_tensors(
    client: httpclient.InferenceServerClient, models: dict[str, Path], binary_in: bool, binary_out: bool
) -> None:
    tensor = httpclient.InferInput("x", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary_in)
    wanted = httpclient.InferRequestedOutput("y", binary_data=binary_out)
    result = client.infer("doubler", [tensor], outputs=[wanted], request_id="triton-1")
    (direct,) = ort_run(models["doubler"], {"x": X})
    np.testing.assert_array_equal(result.as_numpy("y"), direct)
    assert result.get_response()["id"] == "triton-1"


def test_versioned_and_compressed_requests(client: httpclient.InferenceServerClient) -> None:
    tensor = httpclient.InferInput("x", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = client.infer("doubler", [tensor], model_version="1", request_compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("y"), X * 2)
    result = client.infer("doubler", [tensor], request_compression_algorithm="deflate")
    np.testing.assert_array_equal(result.as_numpy("y"), X * 2)


def test_errors_reach_the_client_as_messages(client: httpclient.InferenceServerClient) -> None:
    from tritonclient.utils import InferenceServerException

    tensor = httpclient.InferInput("x", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match="x"):
        client.infer("doubler", [tensor])
