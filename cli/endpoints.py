"""Where a deployed model answers and how to reach it: the session (AWS or the local emulator) and, from a stack's
outputs, the URL, auth type, target and signing region.

    session, emulator = open_session(local=True, start=False)     # emulator: EmulatorInfo, or None for AWS
    endpoint = lookup(session, "iris", "dev", emulator)            # CliError when mlfn-iris-dev does not exist

Locally, a Lambda Function URL is the control plane's `https://127.0.0.1:<port>/` (the data plane binds that port);
the API Gateway front of a SageMaker or ECS model is given an `https://127.0.0.1:<port>` endpoint by the emulator,
which the stack's `InvokeUrl` output (an execute-api name) does not show, so it is read from the API itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .console import CliError

DEFAULT_STAGE = "dev"
ALIAS = "live"  # the alias an mlfn Lambda stack serves (its AliasName output)


@dataclass(frozen=True)
class Endpoint:
    """A deployed model's address: `url` to call, `bind_url` where the local data plane must listen."""

    stack_name: str
    url: str
    auth_type: str
    target: str
    region: str
    outputs: dict[str, str] = field(default_factory=dict)
    ca_path: str | None = None  # the local CA to trust (None: the system's)
    bind_url: str | None = None

    @property
    def model_name(self) -> str:
        return self.stack_name.removeprefix("mlfn-").rsplit("-", 1)[0]

    @property
    def invoker_policy(self) -> dict[str, Any] | None:
        """The stack's `InvokerPolicy` output: the IAM policy a caller needs (None when auth is NONE)."""
        text = self.outputs.get("InvokerPolicy")
        return dict(json.loads(text)) if text else None


def open_session(*, local: bool, region: str | None = None, profile: str | None = None, start: bool = False,
                 say: Callable[[str], None] | None = None) -> tuple[Any, Any]:
    """A boto3 session for AWS (region and credentials checked) or for the emulator (started when `start`)."""
    if not local:
        from .aws.session import aws_session

        return aws_session(region, profile), None
    from . import emulator
    from .aws.session import local_session

    info = emulator.running()
    if info is None:
        if not start:
            raise CliError("the local emulator is not running: start it with `mlfn local start` "
                           "(or deploy with `mlfn deploy MODEL_DIR --local`)")
        if say:
            say(f"- starting the local emulator (state in {emulator.state_dir()}) ...")
        info = emulator.ensure_running()
        if say:
            say(f"  control plane {info.control_url}, HTTPS gateway {info.gateway_url}")
    return local_session(info.control_url), info


def stack_name_for(name: str, stage: str | None) -> str:
    return f"mlfn-{name}-{stage or DEFAULT_STAGE}"


def find_stack(session: Any, stack_name: str, emulator: Any, hint: str) -> dict[str, Any]:
    """The stack's description, or CliError "no stack NAME in WHERE: HINT"."""
    from .aws.cloudformation import describe_stack

    stack = describe_stack(session.client("cloudformation"), stack_name)
    if stack is None:
        where = "the local emulator" if emulator else f"region {session.region_name}"
        raise CliError(f"no stack {stack_name} in {where}" + (f": {hint}" if hint else ""))
    return dict(stack)


def lookup(session: Any, name: str, stage: str | None, emulator: Any) -> Endpoint:
    """The endpoint of model `name` on `stage`, from its stack's outputs."""
    from .aws.cloudformation import outputs_of

    stack_name = stack_name_for(name, stage)
    stack = find_stack(session, stack_name, emulator, f"deploy it with `mlfn deploy MODEL_DIR"
                       f"{' --local' if emulator else ''}`" + (f" --stage {stage}" if stage else ""))
    outputs = outputs_of(stack)
    if "InvokeUrl" not in outputs:
        raise CliError(f"stack {stack_name} ({stack['StackStatus']}) has no InvokeUrl output: is it an mlfn stack "
                       "that finished deploying?")
    return endpoint_for(session, stack_name, outputs, emulator)


def endpoint_for(session: Any, stack_name: str, outputs: dict[str, str], emulator: Any) -> Endpoint:
    url = outputs["InvokeUrl"]
    target = outputs.get("Target", "lambda")
    bind_url = None
    if emulator is not None:
        bind_url = url
        if target != "lambda":
            # the HTTP API's own 127.0.0.1 endpoint, else (a REST API front) the port the data plane chose
            bind_url = _local_api_endpoint(session, stack_name) or _registered_url(emulator, outputs)
            url = (bind_url or "https://127.0.0.1:0/").rstrip("/") + (urlsplit(url).path or "/")
    return Endpoint(stack_name, url, outputs.get("AuthType", "NONE"), target, session.region_name, outputs,
                    str(emulator.ca_path) if emulator else None, bind_url)


def _registered_url(emulator: Any, outputs: dict[str, str]) -> str | None:
    """Where the data plane serves this model, or None before it is registered."""
    entry = registration(emulator, data_plane_key(outputs))
    return f"https://127.0.0.1:{entry['port']}/" if entry and entry.get("port") else None


def _local_api_endpoint(session: Any, stack_name: str) -> str | None:
    """The emulator's https://127.0.0.1:<port> of the stack's API Gateway HTTP API."""
    cfn = session.client("cloudformation")
    for resource in cfn.describe_stack_resources(StackName=stack_name).get("StackResources", []):
        if resource["ResourceType"] == "AWS::ApiGatewayV2::Api" and resource.get("PhysicalResourceId"):
            api = session.client("apigatewayv2").get_api(ApiId=resource["PhysicalResourceId"])
            endpoint = str(api.get("ApiEndpoint") or "")
            return endpoint if urlsplit(endpoint).hostname == "127.0.0.1" else None
    return None


def how_to_call(endpoint: Endpoint, example: str | None, local: bool) -> list[str]:
    """Lines telling a person how to call the endpoint: a curl line and an `mlfn invoke` line."""
    from .aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
    from .client import SIGNING_SERVICE, build_payload

    name = endpoint.model_name
    data = f"@{example}" if example else "'{\"instances\": [[...]]}'"
    path = build_payload(b'{"instances": []}', name, endpoint.target).path
    curl = ["curl"]
    if endpoint.ca_path:
        curl.append(f"--cacert {endpoint.ca_path}")
    if endpoint.auth_type == "AWS_IAM":
        service = SIGNING_SERVICE.get(endpoint.target, "lambda")
        user = f"{LOCAL_ACCESS_KEY}:{LOCAL_SECRET_KEY}" if local else '"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
        curl.append(f'--aws-sigv4 "aws:amz:{endpoint.region}:{service}" --user {user}')
    curl.append(f"-H 'content-type: application/json' -d {data} {endpoint.url.rstrip('/')}{path}")
    stage = endpoint.stack_name.rsplit("-", 1)[1]
    invoke = f"mlfn invoke {name}" + ("" if stage == DEFAULT_STAGE else f" --stage {stage}") + (
        " --local" if local else "") + f" --data {data}"
    return [f"  {invoke}", "  " + " ".join(curl)]


def registration(emulator: Any, key: str) -> dict[str, Any] | None:
    """What the running data plane serves as `key` (its settings: model folder, port, front), asked through its
    admin API; None when it serves nothing so."""
    from .emulator import data_plane_client

    for target in data_plane_client(emulator).status().get("targets", []):
        if target.get("key") == key:
            return dict(target.get("config") or {})
    return None


def data_plane_key(outputs: dict[str, str]) -> str:
    """The data plane's key for a stack's model (from its outputs)."""
    target = outputs.get("Target", "")
    if target == "lambda":
        return f"lambda:{outputs.get('FunctionName')}:{outputs.get('AliasName', ALIAS)}"
    if target == "sagemaker":
        return f"sagemaker:{outputs.get('EndpointName')}"
    if target == "ecs":
        return f"ecs:{outputs.get('ServiceName')}"
    return ""
