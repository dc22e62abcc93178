"""Each bundled function's OpenAPI document (`/openapi.json`) tells the truth about its real server.

Checked by hand (examples the server accepts, the statuses and content types it answers with, schemas that
refuse what it refuses) and by schemathesis with every check (`--checks all`) against `mlfn serve`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from .conftest import FUNCTIONS
from .test_http import serving

BUNDLED = sorted(p.name for p in FUNCTIONS.iterdir() if (p / "model.onnx").is_file())
SCHEMATHESIS_EXAMPLES = 5  # per operation and phase: about 15 s per model on the 2-core machine
SCHEMATHESIS_SEED = 1


def document(url: str) -> dict[str, Any]:
    reply = httpx.get(f"{url}/openapi.json", timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def body_of(doc: dict[str, Any], path: str, media_type: str, method: str = "post") -> dict[str, Any]:
    return doc["paths"][path][method]["requestBody"]["content"][media_type]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", BUNDLED)
def test_documented_examples_are_accepted_and_documented_refusals_happen(name: str) -> None:
    with serving(name, cli=True) as url:
        doc = document(url)
        v1 = body_of(doc, "/v1/models/{name}:predict", "application/json")
        v2 = body_of(doc, "/v2/models/{name}/infer", "application/json")["example"]["inputs"][0]
        one_array = "text/plain" if name == "topics" else "text/csv"  # topics takes raw text, the others numbers
        assert set(doc["paths"]["/invocations"]["post"]["requestBody"]["content"]) >= {"application/json", one_array}
        if name == "topics":
            assert v1["example"] == {"instances": ["text"]}
            assert v2["shape"] == [1] and v2["datatype"] == "BYTES" and v2["data"] == ["text"]
            assert body_of(doc, "/invocations", "text/plain")["example"] == "text"
            assert "text/csv" not in doc["paths"]["/invocations"]["post"]["requestBody"]["content"]
        else:
            width = {"iris": 4, "digits": 64}[name]
            assert v1["example"] == {"instances": [[0] * width]}
            assert v2["shape"] == [1, width] and len(v2["data"]) == width
            assert body_of(doc, "/invocations", "text/csv")["example"] == ",".join(["0"] * width) + "\n"
        with httpx.Client(base_url=url, timeout=30) as client:
            for path, media_type in [("/v1/models/" + name + ":predict", "application/json"),
                                     ("/v2/models/" + name + "/infer", "application/json"),
                                     ("/invocations", "application/json"), ("/invocations", one_array)]:
                template = path.replace(f"/{name}", "/{name}")
                example = body_of(doc, template, media_type)["example"]
                content = example.encode() if isinstance(example, str) else json.dumps(example).encode()
                reply = client.post(path, content=content, headers={"content-type": media_type})
                assert reply.status_code == 200, (path, media_type, reply.text)
            # {} is no request: the schema refuses it and so does the server
            for template in ("/v1/models/{name}:predict", "/v2/models/{name}/infer", "/invocations"):
                schema = {**body_of(doc, template, "application/json")["schema"], "components": doc["components"]}
                jsonschema.validate(body_of(doc, template, "application/json")["example"], schema)
                with pytest.raises(jsonschema.ValidationError):
                    jsonschema.validate({}, schema)
                assert client.post(template.replace("{name}", name), json={}).status_code == 400
            # /ping and /metrics answer text/plain, as documented
            for path in ("/ping", "/metrics"):
                reply = client.get(path)
                documented = doc["paths"][path]["get"]["responses"]["200"]["content"]
                assert reply.status_code == 200 and list(documented) == ["text/plain"]
                assert reply.headers["content-type"].startswith("text/plain")
            # 404, 405 and 415 happen and are documented
            predict = doc["paths"]["/v1/models/{name}:predict"]["post"]["responses"]
            assert {"400", "404", "405", "413", "415", "503"} <= set(predict)
            assert client.post("/v1/models/nope:predict", json=v1["example"]).status_code == 404
            assert client.get(f"/v1/models/{name}:predict").status_code == 405
            assert client.post("/invocations", content=b"x", headers={"content-type": "text/html"}).status_code == 415
            assert "422" not in predict and "HTTPValidationError" not in str(doc)
            assert doc["paths"]["/v1/models/{name}"]["get"]["parameters"][0]["schema"]["enum"] == [name]


def test_binary_v2_body_without_its_header_is_a_415_naming_what_is_accepted() -> None:
    with serving("iris", cli=True) as url:
        reply = httpx.post(f"{url}/v2/models/iris/infer", content=b"\x00\x01\xfe\xff raw tensor bytes",
                           headers={"content-type": "application/octet-stream"}, timeout=30)
    assert reply.status_code == 415, reply.text
    error = reply.json()["error"]
    assert "Inference-Header-Content-Length" in error and "application/json" in error
    assert "UTF-8" not in error and "malformed JSON" not in error


def schemathesis_command(url: str, report: Path) -> list[str]:
    return [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "all",
            "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--seed", str(SCHEMATHESIS_SEED),
            "--generation-database", "none", "--no-color", "--request-timeout", "30",
            "--report", "junit", "--report-junit-path", str(report)]


@pytest.mark.parametrize("name", BUNDLED)
def test_schemathesis_finds_no_difference_between_document_and_server(name: str, tmp_path: Path) -> None:
    """`schemathesis run <url>/openapi.json --checks all` (every phase: examples, coverage, fuzzing, stateful)
    passes, with tests/functions/schemathesis_hooks.py making its binary bodies real ones."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    with serving(name, cli=True) as url:
        done = subprocess.run(schemathesis_command(url, tmp_path / "junit.xml"), capture_output=True, text=True,
                              timeout=300, env=env, cwd=tmp_path)
    summary = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert done.returncode == 0 and summary, done.stdout[-6000:] + done.stderr[-2000:]
    generated, passed = map(int, summary.groups())
    assert generated == passed > 100
    print(f"schemathesis on {name}: {generated} test cases generated, {passed} passed")
