"""`mlfn invoke`'s client: route chosen from the body, SigV4 signing for IAM URLs, over a real HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.credentials import Credentials

from mlfn.cli.client import build_payload, detect_protocol, read_data, send, send_until_awake
from mlfn.cli.console import CliError

V2_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.mark.parametrize(
    ("body", "protocol"),
    [({"instances": [[1, 2]]}, "v1"), ({"inputs": {"a": [1]}}, "v1"), ([[1, 2]], "v1"), (V2_BODY, "v2"),
     ("one text for a model that takes raw text", "v1")],
)
def test_protocol_is_recognised(body: Any, protocol: str) -> None:
    assert detect_protocol(body) == protocol


def test_unknown_body_is_refused_with_what_is_expected() -> None:
    with pytest.raises(CliError, match="KServe v1 body"):
        detect_protocol({"rows": [1]})


def test_routes_follow_protocol_and_target() -> None:
    assert build_payload(json.dumps(V2_BODY).encode(), "iris", "lambda").path == "/v2/models/iris/infer"
    assert build_payload(b'{"instances": [[1]]}', "iris", "lambda").path == "/v1/models/iris:predict"
    assert build_payload(b'{"instances": [[1]]}', "iris", "sagemaker").path == "/invocations"
    png = build_payload(b"\x89PNG...", "digits", "lambda", content_type="image/png")
    assert (png.path, png.content_type) == ("/invocations", "image/png")


def test_data_from_file(tmp_path: Any) -> None:
    (tmp_path / "body.json").write_text('{"instances": []}')
    assert read_data(f"@{tmp_path / 'body.json'}") == b'{"instances": []}'
    with pytest.raises(CliError, match="no such file"):
        read_data(f"@{tmp_path / 'missing.json'}")


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"predictions": [0]}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    Recorder.seen.clear()


def test_iam_urls_are_signed_for_lambda(server: str) -> None:
    payload = build_payload(b'{"instances": [[1, 2, 3, 4]]}', "iris", "lambda")
    creds = Credentials("AKIDEXAMPLE", "secret")
    answer = send(server, payload, auth_type="AWS_IAM", target="lambda", region="eu-west-1", credentials=creds)
    assert answer.status == 200 and json.loads(answer.body) == {"predictions": [0]}
    (seen,) = Recorder.seen
    assert seen["path"] == "/v1/models/iris:predict"
    auth = seen["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/lambda/aws4_request" in auth
    assert "X-Amz-Date" in seen["headers"]


def test_public_urls_are_not_signed(server: str) -> None:
    payload = build_payload(b'{"instances": [[1]]}', "iris", "lambda")
    send(server, payload, auth_type="NONE", target="lambda", region="us-east-1")
    assert "Authorization" not in Recorder.seen[0]["headers"]


def test_iam_without_credentials_is_a_clear_error(server: str) -> None:
    payload = build_payload(b'{"instances": [[1]]}', "iris", "lambda")
    with pytest.raises(CliError, match="no AWS credentials"):
        send(server, payload, auth_type="AWS_IAM", target="lambda", region="us-east-1", credentials=None)


def test_unreachable_endpoint_is_a_clear_error() -> None:
    payload = build_payload(b'{"instances": [[1]]}', "iris", "lambda")
    with pytest.raises(CliError, match="could not reach"):
        send("http://127.0.0.1:9", payload, auth_type="NONE", target="lambda", region="us-east-1", timeout=2)


class Waking(BaseHTTPRequestHandler):
    """Answers 503 + Retry-After (a model scaling from zero) `busy` times, then 200."""

    busy = 0
    seen = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        Waking.seen += 1
        waking = Waking.seen <= Waking.busy
        self.send_response(503 if waking else 200)
        self.send_header("Content-Type", "application/json")
        if waking:
            self.send_header("Retry-After", "60")
        self.end_headers()
        self.wfile.write(b'{"message": "waking"}' if waking else b'{"predictions": [0]}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def waking() -> Iterator[str]:
    Waking.seen = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Waking)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_model_scaling_from_zero_is_retried_with_growing_pauses(waking: str) -> None:
    Waking.busy = 5
    said: list[str] = []
    slept: list[float] = []
    payload = build_payload(b'{"instances": [[1]]}', "iris", "sagemaker")
    answer = send_until_awake(waking, payload, wait_s=120, say=said.append, sleep=slept.append, auth_type="NONE",
                              target="sagemaker", region="us-east-1")
    assert answer.status == 200 and Waking.seen == 6
    assert slept == [1, 2, 4, 8, 15]  # capped at 15 s (Retry-After says 60)
    assert said[0] == "model is scaling from zero, retrying in 1s ..."


def test_waiting_for_a_model_is_bounded(waking: str) -> None:
    Waking.busy = 1000
    said: list[str] = []
    payload = build_payload(b'{"instances": [[1]]}', "iris", "ecs")
    answer = send_until_awake(waking, payload, wait_s=1.5, say=said.append, auth_type="NONE", target="ecs",
                              region="us-east-1")
    assert answer.status == 503 and 2 <= Waking.seen <= 4 and said
    Waking.seen = 0
    lam = send_until_awake(waking, build_payload(b'{"instances": [[1]]}', "iris", "lambda"), wait_s=60,
                           say=said.append, auth_type="NONE", target="lambda", region="us-east-1")
    assert lam.status == 503 and Waking.seen == 1  # Lambda does not scale from zero behind a 503: no retry


@pytest.mark.parametrize(("raw", "where"), [
    (b'{"instances": [[5.1, 3.5, 1.4, 0.2]]', "line 1, column 37"),
    (b'{\n  "instances": [[5.1, 3.5 1.4, 0.2]]\n}', "line 2, column 27"),
    (b"[[1, 2,]]", "line 1, column 8"),
    (b"  {'instances': [[1]]}", "line 1, column 4"),
])
def test_broken_json_is_refused_naming_line_and_column(raw: bytes, where: str) -> None:
    with pytest.raises(CliError, match="--data is not valid JSON") as caught:
        build_payload(raw, "iris", "lambda")
    assert where in str(caught.value), str(caught.value)
    with pytest.raises(CliError, match=where):  # the same with an explicit JSON content type
        build_payload(raw, "iris", "lambda", content_type="application/json")


def test_inline_csv_goes_out_as_csv() -> None:
    for raw in (b"5.1,3.5,1.4,0.2", b"5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3\n", b"5.1\n6.2\n"):
        payload = build_payload(raw, "iris", "lambda")
        assert (payload.content_type, payload.path, payload.body) == ("text/csv", "/invocations", raw)


def test_ragged_csv_is_refused_naming_the_line() -> None:
    with pytest.raises(CliError, match="line 3 has 3 values where line 1 has 4"):
        build_payload(b"5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3\n6.2,2.9,4.3\n", "iris", "lambda")


def test_binary_and_other_text_stay_octet_stream() -> None:
    assert build_payload(b"\x89PNG\r\n\x1a\n\0\0", "digits", "lambda").content_type == "application/octet-stream"
    assert build_payload(b"hello there", "m", "lambda").content_type == "application/octet-stream"


def test_an_empty_list_is_sent_as_given() -> None:
    payload = build_payload(b"[]", "iris", "lambda")
    assert (payload.body, payload.path, payload.protocol) == (b"[]", "/v1/models/iris:predict", "v1")


def test_a_files_suffix_names_its_content_type() -> None:
    from mlfn.cli.client import file_content_type

    assert file_content_type("@examples/3.png") == "image/png"
    assert file_content_type("@rows.csv") == "text/csv"
    assert file_content_type("@body.json") == "application/json"
    assert file_content_type('{"instances": []}') is None
