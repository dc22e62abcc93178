"""The BeforeAllowTraffic check of a CodeDeploy Lambda deployment, run by the control plane for `codedeploy`.

mlfn's stack names a hook function (`infra/rollout.py` `_HOOK_CODE`) whose environment holds the example request
(`EXAMPLE`, `EXAMPLE_PATH`); in AWS it invokes the target version with that request as a Function URL event and
reports Succeeded when the answer is 2xx. The emulator cannot run the inline hook, so this does what it does: reads
the hook's environment (GetFunctionConfiguration), invokes the version through the Lambda API (the data plane runs
it) and answers True on a 2xx without a function error. Without a hook: a `GET /ping`, as the hook does without an
example.
"""

from __future__ import annotations

import json
from typing import Any

import boto3


def http_event(body: str, path: str) -> dict[str, Any]:
    """The Function URL event (payload 2.0) the hook sends: POST `body` to `path`, or GET `path` without a body."""
    method = "POST" if body else "GET"
    return {"version": "2.0", "rawPath": path, "rawQueryString": "", "isBase64Encoded": False,
            "headers": {"content-type": "application/json"}, "body": body,
            "requestContext": {"http": {"method": method, "path": path}}}


def checker(endpoint_url: str, region: str, access_key: str, secret_key: str) -> Any:
    """`(function, version, hook) -> bool` for `codedeploy.SETTINGS.pre_traffic`, through the control plane."""

    def check(function: str, version: str, hook: str = "") -> bool:
        lam = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region,
                           aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        env: dict[str, str] = {}
        if hook:
            env = (lam.get_function_configuration(FunctionName=hook).get("Environment") or {}).get("Variables") or {}
        body = env.get("EXAMPLE", "")
        event = http_event(body, env.get("EXAMPLE_PATH", "/ping") if body else "/ping")
        answer = lam.invoke(FunctionName=function, Qualifier=version, Payload=json.dumps(event).encode())
        result = json.loads(answer["Payload"].read() or b"{}")
        return "FunctionError" not in answer and 200 <= int(result.get("statusCode", 500)) < 300

    return check
