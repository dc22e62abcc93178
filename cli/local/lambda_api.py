"""Lambda API calls mlfn needs that moto lacks or gets wrong, served by a subclass of moto's own Lambda response.

- Function URL configs per qualifier (moto keeps one per function and ignores `Qualifier`), with the emulator's
  HTTPS URLs (see `function_urls`): create/get/update/delete_function_url_config, list_function_url_configs.
- Provisioned concurrency (moto has none): put/get/delete_provisioned_concurrency_config,
  list_provisioned_concurrency_configs.
- Invoke (RequestResponse, Event, DryRun, LogType Tail) runs the function on the data plane (`invoke_api`); moto's
  only echoes.

`install()` points every route of moto's Lambda URL table at `MlfnLambdaResponse` and adds the missing routes; it
must run before the server handles its first Lambda request (moto builds the routing table then).
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from moto.awslambda import urls as lambda_urls
from moto.awslambda.exceptions import (
    GenericResourcNotFound,
    InvalidParameterValueException,
    LambdaClientError,
    UnknownFunctionException,
)
from moto.awslambda.models import LambdaBackend
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE

from . import moto_adapter
from .alias_weights import RoutingError, additional_weights, check_routing
from .emulated_stores import STORES, FunctionUrlRecord, ProvisionedConcurrency, now_iso
from .emulator_state import DATA_PLANE, read_address
from .function_urls import UrlAllocator, allocate_url, port_per_url_allocator
from .invoke_api import INVOCATION_TYPES, reply_from_json

AUTH_TYPES = ("AWS_IAM", "NONE")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")


class ResourceConflict(LambdaClientError):
    code = 409

    def __init__(self, message: str) -> None:
        super().__init__("ResourceConflictException", message)


class ServiceException(LambdaClientError):
    code = 500

    def __init__(self, message: str) -> None:
        super().__init__("ServiceException", message)


class ProvisionedConcurrencyNotFound(LambdaClientError):
    code = 404

    def __init__(self, function_name: str, qualifier: str) -> None:
        super().__init__(
            "ProvisionedConcurrencyConfigNotFoundException",
            f"No Provisioned Concurrency Config found for function: {function_name}:{qualifier}",
        )


def bare_function_name(name_or_arn: str) -> str:
    """`my-fn` from `my-fn`, `my-fn:alias` or a function ARN."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn.split(":")[0]


def qualifier_of(name_or_arn: str) -> str | None:
    """`live` from `my-fn:live` or a qualified function ARN; None when unqualified."""
    parts = name_or_arn.split(":")
    index = 7 if name_or_arn.startswith("arn:") else 1
    return parts[index] if len(parts) > index else None


def check_qualifier(backend: LambdaBackend, function_name: str, qualifier: str | None, *, allow_version: bool) -> None:
    """Raise Lambda's error when `function_name` or its alias/version `qualifier` does not exist."""
    backend.get_function(function_name)  # UnknownFunctionException
    if qualifier is None:
        return
    if qualifier == "$LATEST":
        raise InvalidParameterValueException("$LATEST is not supported for this operation; use an alias or version.")
    if qualifier.isdigit():
        if not allow_version:
            raise InvalidParameterValueException("Function URLs can only be created for an alias, not a version.")
        backend.get_function(function_name, qualifier)
        return
    backend.get_alias(qualifier, function_name)  # UnknownAliasException


def put_function_url(
    backend: LambdaBackend, account: str, region: str, function_name: str, qualifier: str | None, config: dict[str, Any]
) -> FunctionUrlRecord:
    """Create a Function URL (the API call and the CloudFormation resource both come here)."""
    function_name = bare_function_name(function_name)
    check_qualifier(backend, function_name, qualifier, allow_version=False)
    auth_type = config.get("AuthType")
    if auth_type not in AUTH_TYPES:
        raise InvalidParameterValueException(f"AuthType must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}.")
    invoke_mode = (config.get("InvokeMode") or "BUFFERED").upper()
    if invoke_mode not in INVOKE_MODES:
        raise InvalidParameterValueException(f"InvokeMode must be one of {', '.join(INVOKE_MODES)}.")
    key = (account, region, function_name, qualifier)
    with STORES.lock:
        if key in STORES.urls:
            raise ResourceConflict(f"Failed to create function url config for [functionArn = {function_name}]. "
                                   "Error message:  FunctionUrlConfig exists for this Lambda function")
        url = FunctionUrlRecord(
            account=account,
            region=region,
            function_name=function_name,
            qualifier=qualifier,
            auth_type=auth_type,
            url=allocate_url(account, region, function_name, qualifier),
            invoke_mode=invoke_mode,
            cors=config.get("Cors"),
        )
        STORES.urls[key] = url
        STORES.save()
    return url


def get_function_url(account: str, region: str, function_name: str, qualifier: str | None) -> FunctionUrlRecord:
    with STORES.lock:
        url = STORES.urls.get((account, region, bare_function_name(function_name), qualifier))
    if url is None:
        raise GenericResourcNotFound()
    return url


def update_function_url(
    account: str, region: str, function_name: str, qualifier: str | None, config: dict[str, Any]
) -> FunctionUrlRecord:
    with STORES.lock:
        url = get_function_url(account, region, function_name, qualifier)
        if "AuthType" in config:
            if config["AuthType"] not in AUTH_TYPES:
                raise InvalidParameterValueException(f"AuthType must be one of {', '.join(AUTH_TYPES)}.")
            url.auth_type = config["AuthType"]
        if "Cors" in config:
            url.cors = config["Cors"] or None
        if config.get("InvokeMode"):
            url.invoke_mode = config["InvokeMode"].upper()
        url.last_modified = now_iso()
        STORES.save()
    return url


def delete_function_url(account: str, region: str, function_name: str, qualifier: str | None) -> None:
    with STORES.lock:
        key = (account, region, bare_function_name(function_name), qualifier)
        if STORES.urls.pop(key, None) is None:
            raise GenericResourcNotFound()
        STORES.save()


def put_provisioned_concurrency(
    backend: LambdaBackend, account: str, region: str, function_name: str, qualifier: str | None, requested: Any
) -> ProvisionedConcurrency:
    function_name = bare_function_name(function_name)
    if not qualifier:
        raise InvalidParameterValueException("Provisioned concurrency needs a Qualifier (an alias or a version).")
    check_qualifier(backend, function_name, qualifier, allow_version=True)
    if not isinstance(requested, int) or requested < 1:
        raise InvalidParameterValueException(
            f"ProvisionedConcurrentExecutions must be an integer of at least 1, got {requested!r}."
        )
    reserved = backend.get_function(function_name).reserved_concurrency
    if reserved is not None and requested > int(reserved):
        raise InvalidParameterValueException(
            f"Requested provisioned concurrency ({requested}) exceeds the function's reserved concurrency ({reserved})."
        )
    with STORES.lock:
        config = ProvisionedConcurrency(account, region, function_name, qualifier, requested)
        STORES.provisioned[(account, region, function_name, qualifier)] = config
        STORES.save()
    return config


def delete_provisioned_concurrency(account: str, region: str, function_name: str, qualifier: str) -> None:
    with STORES.lock:
        STORES.provisioned.pop((account, region, bare_function_name(function_name), qualifier), None)
        STORES.save()


def data_plane_address(state: Path | None) -> str | None:
    """The internal API of the data plane sharing this control plane's state directory, if one runs."""
    return read_address(state, DATA_PLANE) if state is not None else None


def _post(address: str, path: str, document: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(f"{address}{path}", data=json.dumps(document).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        reason = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise ServiceException(f"The local emulator's data plane refused: {reason}") from None
    except OSError as exc:
        raise ServiceException(f"The local emulator's data plane did not answer: {exc}") from None


def call_data_plane(state: Path | None, path: str, document: dict[str, Any], *, what: str,
                    timeout: float = 960) -> dict[str, Any]:
    """POST `document` to the internal API of the data plane serving `state` (default timeout: the longest function
    timeout, and init); ServiceException when none runs."""
    address = data_plane_address(state)
    if not address:
        raise ServiceException(f"The local emulator's data plane is not running, so nothing can run {what}: start "
                               "it with `mlfn local start`.")
    return _post(address, path, document, timeout=timeout)


def invoke_on_data_plane(state: Path | None, function_name: str, qualifier: str, payload: bytes, *, event: bool,
                         tail: bool) -> dict[str, Any]:
    """Ask the data plane serving `state` to run one invocation (it reads the function from this control plane)."""
    document = {"function": function_name, "qualifier": qualifier, "payload": base64.b64encode(payload).decode(),
                "event": event, "tail": tail}
    return call_data_plane(state, "/invoke", document, what=function_name)


def data_plane_allocator(state: Path | None) -> UrlAllocator:
    """Function URLs whose port the data plane binds and reports (it serves them). Without a running data plane (the
    control plane alone, as in its own tests) nobody can bind one: a free port, bound once a data plane serves it."""

    def allocate(account: str, region: str, function_name: str, qualifier: str | None) -> str:
        address = data_plane_address(state)
        if not address:
            return port_per_url_allocator(account, region, function_name, qualifier)
        document = {"account": account, "region": region, "function": function_name, "qualifier": qualifier}
        return str(_post(address, "/urls", document, timeout=30)["url"])

    return allocate


class MlfnLambdaResponse(LambdaResponse):
    """moto's Lambda API plus the emulator's Function URLs and provisioned concurrency; Invoke runs the function
    on the data plane (moto's would echo the payload)."""

    def invoke(self) -> TYPE_RESPONSE:  # type: ignore[override]
        """Invoke: the function and qualifier are resolved here (404), DryRun answered here (204), and the rest
        runs on the data plane (`invoke_api`), whose answer is passed on as it is."""
        name_or_arn = unquote(self.path.split("?")[0].rstrip("/").rsplit("/", 2)[-2])
        name = bare_function_name(name_or_arn)
        qualifier = self._qualifier() or qualifier_of(name_or_arn) or "$LATEST"
        if qualifier != "$LATEST" and not qualifier.isdigit():
            self.backend.get_alias(qualifier, name)  # 404 for an unknown function or alias
        else:
            self.backend.get_function(name, None if qualifier == "$LATEST" else qualifier)
        kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if kind not in INVOCATION_TYPES:
            raise InvalidParameterValueException(f"Unsupported invocation type {kind}")
        if kind == "DryRun":
            return 204, {"status": 204}, ""
        body = self.body if isinstance(self.body, bytes) else (self.body or "").encode()
        tail = self.headers.get("X-Amz-Log-Type") == "Tail" and kind == "RequestResponse"
        answer = invoke_on_data_plane(STORES.state_dir, name, qualifier, body, event=kind == "Event", tail=tail)
        return reply_from_json(answer)

    def _function_from_path(self) -> str:
        # /<version>/functions/<name>/<url|urls|provisioned-concurrency>
        return bare_function_name(unquote(self.path.split("?")[0].rstrip("/").split("/")[3]))

    def _qualifier(self) -> str | None:
        value = self.querystring.get("Qualifier", [None])[0]
        return value or None

    def _json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}

    def create_function_url_config(self) -> TYPE_RESPONSE:
        url = put_function_url(
            self.backend, self.current_account, self.region, self._function_from_path(), self._qualifier(), self._json()
        )
        return 201, {"status": 201}, json.dumps(url.to_api())

    def get_function_url_config(self) -> TYPE_RESPONSE:
        name = self._function_from_path()
        self.backend.get_function(name)
        url = get_function_url(self.current_account, self.region, name, self._qualifier())
        return 200, {}, json.dumps(url.to_api())

    def update_function_url_config(self) -> TYPE_RESPONSE:  # type: ignore[override]
        url = update_function_url(
            self.current_account, self.region, self._function_from_path(), self._qualifier(), self._json()
        )
        return 200, {}, json.dumps(url.to_api())

    def delete_function_url_config(self) -> TYPE_RESPONSE:
        delete_function_url(self.current_account, self.region, self._function_from_path(), self._qualifier())
        return 204, {"status": 204}, ""

    def list_function_url_configs(self) -> TYPE_RESPONSE:
        name = self._function_from_path()
        self.backend.get_function(name)
        with STORES.lock:
            urls = [u.to_api() for k, u in STORES.urls.items() if k[:3] == (self.current_account, self.region, name)]
        return 200, {}, json.dumps({"FunctionUrlConfigs": urls})

    def put_provisioned_concurrency_config(self) -> TYPE_RESPONSE:
        requested = self._json().get("ProvisionedConcurrentExecutions")
        config = put_provisioned_concurrency(
            self.backend, self.current_account, self.region, self._function_from_path(), self._qualifier(), requested
        )
        return 202, {"status": 202}, json.dumps(config.to_api())

    def get_provisioned_concurrency_config(self) -> TYPE_RESPONSE:
        name, qualifier = self._function_from_path(), self._qualifier() or ""
        if self.querystring.get("List"):
            return self.list_provisioned_concurrency_configs()
        self.backend.get_function(name)
        with STORES.lock:
            config = STORES.provisioned.get((self.current_account, self.region, name, qualifier))
        if config is None:
            raise ProvisionedConcurrencyNotFound(name, qualifier)
        return 200, {}, json.dumps(config.to_api())

    def delete_provisioned_concurrency_config(self) -> TYPE_RESPONSE:
        name, qualifier = self._function_from_path(), self._qualifier() or ""
        self.backend.get_function(name)
        delete_provisioned_concurrency(self.current_account, self.region, name, qualifier)
        return 204, {"status": 204}, ""

    def list_provisioned_concurrency_configs(self) -> TYPE_RESPONSE:
        name = self._function_from_path()
        self.backend.get_function(name)
        with STORES.lock:
            configs = [
                c.to_api(with_arn=True)
                for k, c in STORES.provisioned.items()
                if k[:3] == (self.current_account, self.region, name)
            ]
        return 200, {}, json.dumps({"ProvisionedConcurrencyConfigs": configs})


_ROUTES = {
    r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/urls/?$": MlfnLambdaResponse.dispatch,
    r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/provisioned-concurrency/?$": (
        MlfnLambdaResponse.dispatch
    ),
}


def _delete_function(self: LambdaBackend, function_name: str, qualifier: str | None = None) -> None:
    """moto's delete_function, also forgetting the function's URLs and provisioned concurrency (as Lambda does)."""
    moto_adapter.moto_delete_function(self, function_name, qualifier)
    name = bare_function_name(function_name)
    with STORES.lock:
        for store in (STORES.urls, STORES.provisioned):
            for key in [k for k in store if k[:3] == (self.account_id, self.region_name, name)
                        and (qualifier is None or k[3] == qualifier)]:
                del store[key]  # type: ignore[attr-defined]
        STORES.save()


def _checked_routing(function_version: str | None, routing_config: Any) -> None:
    """400 InvalidParameterValueException for a RoutingConfig Lambda refuses (`alias_weights.check_routing`)."""
    try:
        check_routing(str(function_version), additional_weights({"RoutingConfig": routing_config}))
    except (RoutingError, TypeError, ValueError) as exc:
        raise InvalidParameterValueException(f"RoutingConfig: {exc}") from None


def _patch_aliases() -> None:
    """CreateAlias and UpdateAlias (API and CloudFormation alike) refuse the routing Lambda refuses; PublishVersion
    keeps the version's code."""
    if getattr(LambdaBackend.create_alias, "_mlfn", False):
        return
    create, update = LambdaBackend.create_alias, LambdaBackend.update_alias

    def create_alias(self: LambdaBackend, name: str, function_name: str, function_version: str, description: str,
                     routing_config: Any) -> Any:
        _checked_routing(function_version, routing_config)
        return create(self, name, function_name, function_version, description, routing_config)

    def update_alias(self: LambdaBackend, name: str, function_name: str, function_version: str | None,
                     description: str, routing_config: Any) -> Any:
        if routing_config is not None:
            _checked_routing(function_version or self.get_alias(name, function_name).function_version,
                             routing_config)
        return update(self, name, function_name, function_version, description, routing_config)

    publish = LambdaBackend.publish_version

    def publish_version(self: LambdaBackend, function_name: str, description: str = "") -> Any:
        """moto's version shares its code dict with $LATEST, so a later UpdateFunctionCode changed the version's
        image too; a published version's code is immutable ("Lambda function versions"): it gets its own copy."""
        version = publish(self, function_name, description)
        if version is not None:
            version.code = copy.deepcopy(version.code)
        return version

    create_alias._mlfn = True  # type: ignore[attr-defined]
    LambdaBackend.create_alias = create_alias  # type: ignore[method-assign]
    LambdaBackend.update_alias = update_alias  # type: ignore[method-assign]
    LambdaBackend.publish_version = publish_version  # type: ignore[method-assign]


def install() -> None:
    """Serve moto's Lambda routes with `MlfnLambdaResponse` and add the emulator's. Idempotent."""
    _patch_aliases()
    for pattern in list(lambda_urls.url_paths):
        lambda_urls.url_paths[pattern] = MlfnLambdaResponse.dispatch
    lambda_urls.url_paths.update(_ROUTES)
    moto_adapter.install(STORES.state_dir, _delete_function)


__all__ = ["MlfnLambdaResponse", "UnknownFunctionException", "install", "put_function_url"]
