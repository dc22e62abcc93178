"""One place decides what the data plane runs for Lambda: the control plane's state, read through the Lambda and
ECR APIs, whoever wrote it (CloudFormation, boto3, the AWS CLI, `mlfn deploy`).

Every `interval` seconds the reconciler lists the functions with `PackageType: Image`, their Function URLs (each
alias's or the unqualified function's), resolves each URL's qualifier to a version, reads that version's memory,
timeout, environment and image, the function's reserved concurrency and the qualifier's provisioned concurrency, and
makes the data plane serve exactly that: a new URL starts being served, a changed setting re-registers it on the same
URL (new sandboxes; reserved/provisioned concurrency change in place), a deleted function or URL stops. Functions
called through the Invoke API without a URL are served the same way for as long as they exist (`ensure`).
The control plane asks for a pass at once after each Lambda or SageMaker write (`change_notice`, the data plane's
POST /reconcile), so an alias's new version or weights (a rollback) are served before its UpdateAlias answers;
the poll is the fallback.

The image is the function's `ImageUri` in the emulator's ECR, pinned to the digest `BatchGetImage` answers for it;
the data plane runs it isolated in its own root filesystem (`image_rootfs.prepare`, from the emulator's registry
storage), or, where it cannot, the host runtime on the image's model folder, and says which and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .alias_weights import additional_weights
from .config import LAMBDA_HANDLER, ContainerConfig, FunctionConfig
from .image_rootfs import ImageUnavailable, model_folder
from .registry_storage import ECR_IMAGE


class Plane(Protocol):
    """What the reconciler drives (the data plane)."""

    state_dir: Path

    def target_configs(self) -> dict[str, FunctionConfig]: ...
    def container_keys(self) -> set[str]: ...
    def reserved_urls(self) -> dict[str, int]: ...
    async def aregister(self, config: FunctionConfig | ContainerConfig, *, save: bool = True) -> Any: ...
    async def aupdate(self, key: str, **changes: Any) -> Any: ...
    async def aunregister(self, key: str, *, save: bool = True) -> bool: ...
    async def arelease_url(self, key: str) -> None: ...

IN_PLACE = {"reserved", "provisioned", "idle_s", "weights"}
DEFAULT_IDLE_S = 300.0
LATEST = "$LATEST"


class Reconciler:
    """Keeps the data plane's Lambda targets equal to what the control plane at `control_url` holds."""

    def __init__(self, plane: Plane, control_url: str, *, interval: float = 1.0) -> None:
        self.plane = plane
        self.control_url = control_url
        self.interval = interval
        self.invoked: set[tuple[str, str]] = set()  # (function, qualifier) called through Invoke, without a URL
        self.problems: dict[str, str] = {}  # key -> why it cannot be served (shown in status)
        self.url_keys: set[str] = set()  # the Function URLs the control plane holds, as of the last pass
        self.owned_endpoints: set[str] = set()  # SageMaker endpoints this reconciler started serving
        self.owned: set[str] = set()  # Lambda targets it serves (others, registered through the library, stay)
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._pass = asyncio.Lock()  # one pass (read, then apply) at a time
        self._started = self._finished = 0  # passes started, and the last one finished

    # ------------------------------------------------------------------ reading the control plane (blocking)

    def _client(self, service: str, region: str) -> Any:
        key = f"{service}/{region}"
        if key not in self._clients:
            import boto3

            from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

            self._clients[key] = boto3.client(service, endpoint_url=self.control_url, region_name=region,
                                              aws_access_key_id=LOCAL_ACCESS_KEY,
                                              aws_secret_access_key=LOCAL_SECRET_KEY)
        return self._clients[key]

    def desired(self, region: str = "us-east-1") -> dict[str, FunctionConfig]:
        """What should run now: one config per served (function, qualifier), keyed like the data plane's targets."""
        lam = self._client("lambda", region)
        out: dict[str, FunctionConfig] = {}
        names: set[str] = set()
        url_keys: set[str] = set()
        for page in lam.get_paginator("list_functions").paginate():
            for fn in page["Functions"]:
                if fn.get("PackageType") != "Image":
                    continue
                name = fn["FunctionName"]
                names.add(name)
                for url in lam.list_function_url_configs(FunctionName=name).get("FunctionUrlConfigs", []):
                    qualifier = _qualifier_of(url["FunctionArn"]) or LATEST
                    url_keys.add(f"lambda:{name}:{qualifier}")
                    self._add(out, name, qualifier, region, url)
        for name, qualifier in sorted(self.invoked):
            if name not in names:
                self.invoked.discard((name, qualifier))
            elif f"lambda:{name}:{qualifier}" not in out:
                self._add(out, name, qualifier, region, None)
        for config in [c for c in out.values() if c.weights]:  # an alias's other versions serve its share
            for version in config.weights:
                if f"lambda:{config.name}:{version}" not in out:
                    self._add(out, config.name, version, region, None)
        self.url_keys = url_keys
        return out

    def _add(self, out: dict[str, FunctionConfig], name: str, qualifier: str, region: str,
             url: dict[str, Any] | None) -> None:
        key = f"lambda:{name}:{qualifier}"
        try:
            out[key] = self.config_for(name, qualifier, region, url)
            self.problems.pop(key, None)
        except Exception as exc:  # one function that cannot run must not stop the others
            if _error_code(exc) == "ResourceNotFoundException":  # deleted between two calls
                return
            self._problem(key, str(exc))

    def _problem(self, key: str, why: str) -> None:
        if self.problems.get(key) != why:
            print(f"mlfn data plane: cannot serve {key}: {why}", file=sys.stderr, flush=True)
        self.problems[key] = why

    def config_for(self, name: str, qualifier: str, region: str, url: dict[str, Any] | None) -> FunctionConfig:
        """The data plane's settings for `name:qualifier` from the function's configuration of that version."""
        lam = self._client("lambda", region)
        version, weights = qualifier, {}
        if qualifier != LATEST and not qualifier.isdigit():
            alias = lam.get_alias(FunctionName=name, Name=qualifier)
            version = alias["FunctionVersion"]
            weights = additional_weights(alias)
        function = lam.get_function(FunctionName=name, Qualifier=version)
        conf = function["Configuration"]
        reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        provisioned = 0
        if qualifier != LATEST:
            with contextlib.suppress(Exception):  # ProvisionedConcurrencyConfigNotFoundException: none
                provisioned = int(lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)[
                    "RequestedProvisionedConcurrentExecutions"])
        image, model_dir = self.image(function.get("Code", {}).get("ImageUri", ""), region)
        command = (conf.get("ImageConfigResponse") or {}).get("ImageConfig", {}).get("Command") or []
        arn = conf["FunctionArn"].split(":")
        return FunctionConfig(
            name=name, model_dir=str(model_dir), qualifier=qualifier, memory_mb=int(conf.get("MemorySize", 128)),
            timeout_s=float(conf.get("Timeout", 3)), reserved=-1 if reserved is None else int(reserved),
            provisioned=provisioned, auth_type=(url or {}).get("AuthType", "AWS_IAM"), idle_s=_idle_s(model_dir),
            region=arn[3], account=arn[4], version=str(conf.get("Version", version)),
            handler=command[0] if command else LAMBDA_HANDLER, image_command=list(command),
            env=dict((conf.get("Environment") or {}).get("Variables") or {}), image=image,
            cors=(url or {}).get("Cors") or None, port=_port_of((url or {}).get("FunctionUrl")), public=url is not None,
            weights=weights)

    def image(self, image_uri: str, region: str) -> tuple[str, Path]:
        """`image_uri` (an image in the emulator's ECR) pinned to its digest, and its model folder."""
        match = ECR_IMAGE.match(image_uri or "")
        if not match:
            raise ImageUnavailable(f"ImageUri {image_uri!r} is not an image in the emulator's ECR "
                                   "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY[:TAG|@DIGEST])")
        image_id = {"imageDigest": match["digest"]} if match["digest"] else {"imageTag": match["tag"] or "latest"}
        ecr = self._client("ecr", match["region"])
        try:
            images = ecr.batch_get_image(repositoryName=match["repo"], imageIds=[image_id]).get("images", [])
        except Exception as exc:
            if _error_code(exc) != "RepositoryNotFoundException":
                raise
            images = []
        if not images:
            raise ImageUnavailable(f"image {image_uri} is not in the emulator's ECR (push it with `mlfn push`)")
        pinned = f"{image_uri[:match.end('repo')]}@{images[0]['imageId']['imageDigest']}"
        return pinned, model_folder(self.plane.state_dir, pinned)

    # ------------------------------------------------------------------ applying it (the data plane's loop)

    async def run(self) -> None:
        failing = ""
        while True:
            try:
                await self.reconcile()
                failing = ""
            except Exception as exc:  # the control plane is down or restarting: try again, say it once
                if str(exc) != failing:
                    print(f"mlfn data plane: cannot read the control plane: {exc}", file=sys.stderr, flush=True)
                failing = str(exc)
            await asyncio.sleep(self.interval)

    async def reconcile(self) -> None:
        """One pass that reads the control plane after this call: read it, then start, change or stop the data
        plane's Lambda targets (and start SageMaker endpoints nothing serves yet). Passes run one at a time (an
        older read never overwrites a newer one); callers that waited while one ran share the next."""
        wanted = self._started + 1  # the first pass that starts after this call
        async with self._pass:
            if self._finished >= wanted:  # one started while this call waited, and it is done
                return
            self._started += 1
            try:
                desired = await asyncio.to_thread(self.desired)
                endpoints = await asyncio.to_thread(self.endpoints, set(self.plane.container_keys()))
                async with self._lock:
                    await self._apply(desired)
                    await self._apply_endpoints(endpoints)
            finally:
                self._finished = self._started

    # ------------------------------------------------------------------ SageMaker endpoints

    def endpoints(self, served: set[str], region: str = "us-east-1") -> dict[str, ContainerConfig | None]:
        """Every SageMaker endpoint the control plane holds, by key: the settings of one nothing serves yet (its
        model's image in the emulator's ECR), None for one that is served already."""
        sm = self._client("sagemaker", region)
        out: dict[str, ContainerConfig | None] = {}
        for endpoint in sm.list_endpoints(MaxResults=100).get("Endpoints", []):
            name, key = endpoint["EndpointName"], f"sagemaker:{endpoint['EndpointName']}"
            out[key] = None
            if key in served or endpoint.get("EndpointStatus") != "InService":
                continue
            try:
                image, model_dir = self.image(_endpoint_image(sm, name), region)
                out[key] = ContainerConfig(name=name, model_dir=str(model_dir), kind="sagemaker", image=image)
                self.problems.pop(key, None)
            except Exception as exc:  # one endpoint that cannot run must not stop the others
                if _error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                    self._problem(key, str(exc))
        return out

    async def _apply_endpoints(self, endpoints: dict[str, ContainerConfig | None]) -> None:
        for key in [k for k in self.owned_endpoints if k not in endpoints]:  # the endpoint was deleted
            self.owned_endpoints.discard(key)
            await self.plane.aunregister(key)
        for key, config in endpoints.items():
            if config is not None and key not in self.plane.container_keys():
                try:
                    await self.plane.aregister(config)
                except (OSError, ValueError) as exc:
                    self._problem(key, str(exc))
                    continue
                self.owned_endpoints.add(key)

    async def _apply(self, desired: dict[str, FunctionConfig]) -> None:
        plane = self.plane
        for key in [k for k in plane.target_configs() if k in self.owned and k not in desired]:
            self.owned.discard(key)
            await plane.aunregister(key)
        for key in [k for k in plane.reserved_urls() if k not in self.url_keys]:
            await plane.arelease_url(key)  # the Function URL (or its function) was deleted
        for key, config in desired.items():
            try:
                await self._apply_one(key, config)
            except (OSError, ValueError) as exc:
                self._problem(key, str(exc))

    async def _apply_one(self, key: str, config: FunctionConfig) -> None:
        current = self.plane.target_configs().get(key)
        if current is None:
            await self.plane.aregister(config)
            self.owned.add(key)
            return
        changed = {f.name for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(current, f.name) and f.name != "port"}
        if not changed:
            return
        if changed <= IN_PLACE:
            await self.plane.aupdate(key, **{k: getattr(config, k) for k in changed})
        else:
            await self.plane.aregister(config)
        self.owned.add(key)  # the control plane holds it: from now on it follows the control plane

    async def ensure(self, name: str, qualifier: str) -> None:
        """Serve `name:qualifier` for the Invoke API (it may have no Function URL), now."""
        self.invoked.add((name, qualifier))
        await self.reconcile()


def _endpoint_image(sm: Any, name: str) -> str:
    """The image an endpoint runs: its (first) inference component's model, else its first variant's model."""
    components = sm.list_inference_components(EndpointNameEquals=name).get("InferenceComponents", [])
    model = ""
    if components:
        spec = sm.describe_inference_component(
            InferenceComponentName=components[0]["InferenceComponentName"])["Specification"]
        if spec.get("Container", {}).get("Image"):
            return str(spec["Container"]["Image"])
        model = spec.get("ModelName", "")
    if not model:
        config = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        variants = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        model = next((v["ModelName"] for v in variants if v.get("ModelName")), "")
    described = sm.describe_model(ModelName=model)
    container = described.get("PrimaryContainer") or (described.get("Containers") or [{}])[0]
    return str(container.get("Image", ""))


def _qualifier_of(function_arn: str) -> str | None:
    parts = function_arn.split(":")
    return parts[7] if len(parts) > 7 else None


def _port_of(url: str | None) -> int:
    return (urlsplit(url).port or 0) if url else 0


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


_idle_cache: dict[Path, float] = {}


def _idle_s(model_dir: Path) -> float:
    """The emulator's scale-to-zero delay: `[lambda] idle_timeout_s` of the image's mlfn.toml (not an AWS setting)."""
    if model_dir not in _idle_cache:
        idle = DEFAULT_IDLE_S
        with contextlib.suppress(Exception):
            from mlfn.runtime.spec import load_spec

            idle = float(load_spec(model_dir).settings.lambda_.idle_timeout_s)
        _idle_cache[model_dir] = idle
    return _idle_cache[model_dir]
