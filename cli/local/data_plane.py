"""The emulator's data plane as a library: register what is deployed, get an HTTPS URL that runs it.

    plane = DataPlane(state_dir)          # the emulator's state dir (TLS files, logs, registrations)
    plane.start()                         # its own thread and event loop; restores persisted registrations
    ep = plane.register_lambda("iris-dev", "functions/iris", alias="live", memory_mb=2048, timeout_s=30,
                               reserved=-1, provisioned=0, auth_type="AWS_IAM", idle_s=300)
    ep.url  ->  "https://127.0.0.1:<port>/"   (trust plane.ca_path; sign with mlfn-local / mlfn-local-secret)
    plane.register_container("iris-dev", "functions/iris", kind="sagemaker")   # or kind="ecs"
    plane.unregister(ep.key); plane.stop()

Registrations are saved in `<state>/data-plane/registrations.json` (with their ports, so URLs survive a restart).
`python -m mlfn.cli.local.data_plane [--state-dir D]` runs the same thing as a process with a small admin API
(plain HTTP on 127.0.0.1, bearer token in the 0600 file `<state>/data-plane/admin.json`); `DataPlaneClient(state_dir)`
calls it with the same methods.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import signal
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import invoke_api
from .alias_weights import choose
from .config import ACCOUNT, REGION, ContainerConfig, FunctionConfig, config_from_json
from .containers import ContainerEndpoint
from .emulator_state import DATA_PLANE, GATEWAY, publish_address, read_json, state_dir, withdraw_address, write_json
from .front_metrics import FrontCall
from .function_url import FunctionUrl
from .gateway import Gateway, GatewayRequest, QuietServer
from .iam_callers import CallerDirectory
from .image_rootfs import prepare
from .logsink import FileLogSink, Forward
from .metrics_sink import Invocation, MetricsSink
from .orphans import ChildRegistry
from .payload_v2 import HttpReply
from .pool import DEFAULT_ACCOUNT_CONCURRENCY, Account, FunctionPool
from .reconciler import Reconciler
from .sandbox import InvokeResult
from .sigv4 import Credential, default_credentials
from .tls import ensure_tls, trust_hint
from .url_ports import UnservedUrl, url_key

T = TypeVar("T")
# What MlfnLambdaModel's Function URL CORS allows (mlfn.infra.lambda_model.CORS_HEADERS, not imported: aws_cdk is slow)
SIGV4_HEADERS = ("content-type", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")


@dataclass(frozen=True)
class Registration:
    """What a registration gives back: where to call it and how."""

    key: str  # "lambda:<function>:<alias>" | "sagemaker:<endpoint>" | "ecs:<service>"
    kind: str  # "lambda" | "sagemaker" | "ecs"
    name: str
    url: str  # https://127.0.0.1:<port>/  (a SageMaker endpoint is invoked at <url>endpoints/<name>/invocations)
    host_url: str  # the same target by Host header on the shared port: https://<url-id>.lambda-url.<region>.localhost:P/
    url_id: str
    port: int
    auth_type: str
    region: str
    signing_service: str | tuple[str, ...]
    ca_path: str
    isolation: str = ""  # what the sandboxes run: the image in a chroot, or the host runtime and why (image_rootfs)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DataPlane:
    """Sandboxes, container instances and the HTTPS gateway in front of them."""

    def __init__(self, state: str | Path | None = None, *, credentials: dict[str, Credential] | None = None,
                 account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY, memory_mode: str = "auto",
                 log_forward: Forward | None = None, echo_logs: bool = False, persist: bool = True,
                 control_plane: str | None = None) -> None:
        self.state_dir = state_dir(state).resolve()
        self.folder = self.state_dir / "data-plane"
        self.credentials = credentials or default_credentials()
        self.account = Account(account_concurrency)
        self.memory_mode = memory_mode
        self.persist = persist
        # with a control plane, the Lambda service metrics, EMF lines and the SageMaker / ECS fronts' metrics go to
        # its CloudWatch (`metrics_sink`)
        self.metrics = MetricsSink(_client("cloudwatch", control_plane)) if control_plane else None
        # with a control plane, an ECS service's desired count decides whether its front has a task (`desired_tasks`)
        self.ecs = _client("ecs", control_plane) if control_plane else None
        self.logs = FileLogSink(self.state_dir / "logs", forward=self._forward(log_forward), echo=echo_logs)
        self.tls = ensure_tls(self.state_dir)
        # with the control plane's URL, keys of its IAM users and roles sign too, checked against their policies
        self.gateway = Gateway(self.tls, self.credentials,
                               callers=CallerDirectory(control_plane) if control_plane else None)
        self._targets: dict[str, FunctionUrl | ContainerEndpoint] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._own_loop = False
        self._watcher: asyncio.Task[None] | None = None
        self._synced: dict[str, int] = {}  # keys whose provisioned concurrency came from the control plane
        self.children = ChildRegistry(self.folder / "children.json")
        # with a control plane, its Lambda state decides which functions run (see `reconciler`)
        self.reconciler = Reconciler(self, control_plane) if control_plane else None
        self._reconciling: asyncio.Task[None] | None = None
        self._urls: dict[str, int] = {}  # Function URL key -> the port this data plane bound for it
        self._listening: set[int] = set()  # ports of Function URLs and endpoints it listens on
        self._retiring: set[asyncio.Task[None]] = set()  # replaced functions closing once their calls end

    @property
    def ca_path(self) -> Path:
        return self.tls.ca

    # ------------------------------------------------------------------ sync API (own thread)

    def start(self) -> None:
        """Run the data plane on a background thread; returns once the gateway listens."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.astart())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._own_loop = True
        self._thread = threading.Thread(target=run, name="mlfn-data-plane", daemon=True)
        self._thread.start()
        if not ready.wait(120):
            raise RuntimeError("the data plane did not start within 120 s")

    def stop(self) -> None:
        if self._loop is None or not self._own_loop:
            return
        self._call(self.astop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)
        self._loop = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            raise RuntimeError("the data plane is not running: call start() first")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def register_lambda(self, function_name: str, model_dir: str | Path, *, alias: str = "live",
                        memory_mb: int = 2048, timeout_s: float = 30, reserved: int = -1, provisioned: int = 0,
                        auth_type: str = "AWS_IAM", idle_s: float = 300, url: str | None = None,
                        **extra: Any) -> Registration:
        """Serve a function alias at a Function URL; `url` (e.g. the control plane's) fixes its port."""
        config = FunctionConfig(name=function_name, model_dir=str(Path(model_dir).resolve()), qualifier=alias,
                                memory_mb=memory_mb, timeout_s=timeout_s, reserved=reserved, provisioned=provisioned,
                                auth_type=auth_type, idle_s=idle_s, port=_port_of(url), **extra)
        return self._call(self.aregister(config))

    def register_container(self, name: str, model_dir: str | Path, *, kind: str = "sagemaker",
                           auth_type: str = "AWS_IAM", idle_s: float = 900, memory_mb: int = 2048,
                           url: str | None = None, **extra: Any) -> Registration:
        """Serve a SageMaker endpoint (`kind="sagemaker"`) or ECS service (`kind="ecs"`) from `serve` processes."""
        config = ContainerConfig(name=name, model_dir=str(Path(model_dir).resolve()), kind=kind, auth_type=auth_type,
                                 idle_s=idle_s, memory_mb=memory_mb, port=_port_of(url), **extra)
        return self._call(self.aregister(config))

    def register_model(self, model_dir: str | Path, *, name: str | None = None, stage: str = "dev",
                       url: str | None = None, target: str | None = None, **overrides: Any) -> Registration:
        """Register a model directory for its `target` with the settings of its mlfn.toml (see `config_for_model`)."""
        return self._call(self.aregister(config_for_model(model_dir, name=name, stage=stage, url=url, target=target,
                                                          **overrides)))

    def update_lambda(self, key: str, **changes: Any) -> Registration:
        """Change a registered function: `reserved`, `provisioned` and `idle_s` apply in place (warm sandboxes
        stay); any other setting re-registers it on the same URL."""
        return self._call(self.aupdate(key, **changes))

    def unregister(self, key: str) -> bool:
        return self._call(self.aunregister(key))

    def endpoints(self) -> list[Registration]:
        return [self._endpoint(t) for t in self._targets.values()]

    def status(self) -> dict[str, Any]:
        return self._call(self.astatus())

    # ------------------------------------------------------------------ async API (caller's loop)

    async def astart(self) -> None:
        self._loop = self._loop or asyncio.get_running_loop()
        self.children.reap()  # what a data plane that was killed outright left running
        previous = read_json(self.folder / "state.json") or {}
        self.gateway.shared_port = await self.gateway.listen(int(previous.get("shared_port", 0)))
        write_json(self.folder / "state.json", {"shared_port": self.gateway.shared_port})
        publish_address(self.state_dir, GATEWAY, f"https://127.0.0.1:{self.gateway.shared_port}/",
                        ca=str(self.tls.ca))
        if self.persist:
            for key, port in (read_json(self.folder / "urls.json") or {}).items():
                await self._rebind_url(key, int(port))
            for data in read_json(self.folder / "registrations.json") or []:
                with contextlib.suppress(Exception):
                    served = await self.aregister(config_from_json(data), save=False)
                    if self.reconciler is not None and served.kind == "lambda":
                        self.reconciler.owned.add(served.key)  # it follows the control plane again
        if self.metrics is not None:
            self.metrics.start()
        if self.reconciler is not None:  # provisioned concurrency comes with the rest of the function's state
            self._reconciling = asyncio.create_task(self.reconciler.run())
        else:
            self._watcher = asyncio.create_task(self._follow_control_plane())

    async def astop(self) -> None:
        for task in (self._watcher, self._reconciling):
            if task is not None:
                task.cancel()
        for key in list(self._targets):
            await self.aunregister(key, save=False)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.gateway.close()
        withdraw_address(self.state_dir, GATEWAY)
        if self.metrics is not None:
            with contextlib.suppress(Exception):  # the control plane may be gone first: the last metrics with it
                await asyncio.to_thread(self.metrics.stop)

    async def aregister(self, config: FunctionConfig | ContainerConfig, *, save: bool = True) -> Registration:
        if not Path(config.model_dir).is_dir() and not config.command:
            raise ValueError(f"model directory {config.model_dir} does not exist")
        old = self._targets.get(config.key)
        if old is not None:
            config.port = config.port or old.config.port
            if not _replaceable(old, config):
                await self.aunregister(config.key, save=False)
                old = None
        target: FunctionUrl | ContainerEndpoint
        run = await asyncio.to_thread(prepare, self.state_dir, config.image)  # unpacks the image once per digest
        if isinstance(config, FunctionConfig):
            pool = FunctionPool(config, self.logs, account=self.account, memory_mode=self.memory_mode, run=run)
            target = FunctionUrl(config, pool)
            target.route, target.meter = self.routed, self.meter
        else:
            target = ContainerEndpoint(config, self.logs, memory_mode=self.memory_mode, children=self.children,
                                       state=self.state_dir, run=run)
            target.meter = self.meter_front
            if config.kind == "ecs" and config.cluster:
                target.desired_tasks = functools.partial(self.desired_tasks, config.cluster, config.name)
        if old is not None and isinstance(target, FunctionUrl):  # a new version behind the same URL: no gap
            await target.pool.start()
            if _public(config):
                self.gateway.add(target, config.port)
            self._targets[config.key] = target
            self._retire_later(old)
            if save:
                self._save()
            return self._endpoint(target)
        if _public(config):
            if config.port not in self._listening:
                config.port = await self._bind(config.port)
            self.gateway.add(target, config.port)
        self._targets[config.key] = target
        try:
            await (target.pool.start() if isinstance(target, FunctionUrl) else target.start())
        except BaseException:  # e.g. a SnapStart version that cannot be published: nothing stays registered
            await self.aunregister(config.key, save=False)
            raise
        if save:
            self._save()
        return self._endpoint(target)

    async def aupdate(self, key: str, **changes: Any) -> Registration:
        target = self._targets.get(key)
        if not isinstance(target, FunctionUrl):
            raise KeyError(f"no function registered as {key!r}")
        config = FunctionConfig(**{**dataclasses.asdict(target.config), **changes})  # validates the new values
        if set(changes) <= {"reserved", "provisioned", "idle_s", "weights"}:
            target.config.reserved, target.config.provisioned = config.reserved, config.provisioned
            target.config.idle_s, target.config.weights = config.idle_s, config.weights
            await target.pool.reconfigure()
            self._save()
            return self._endpoint(target)
        return await self.aregister(config)

    async def sync_provisioned(self) -> None:
        """Apply `<state>/provisioned-concurrency.json` (written by the control plane on
        PutProvisionedConcurrencyConfig, CloudFormation and autoscaling) to the registered functions."""
        wanted: dict[str, int] = {}
        for entry in read_json(self.state_dir / "provisioned-concurrency.json") or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                wanted[f"lambda:{entry['function_name']}:{entry['qualifier']}"] = int(entry["requested"])
        for key in set(wanted) | set(self._synced):
            target = self._targets.get(key)
            count = wanted.get(key, 0)
            if not isinstance(target, FunctionUrl) or target.config.provisioned == count:
                continue
            try:
                await self.aupdate(key, provisioned=count)
            except ValueError as exc:
                target.pool.sandbox_log(f"Provisioned concurrency {count} not applied: {exc}")
                continue
            target.pool.sandbox_log(f"Provisioned concurrency set to {count} by the control plane")
        self._synced = wanted

    async def _follow_control_plane(self, interval: float = 1.0) -> None:
        path = self.state_dir / "provisioned-concurrency.json"
        seen: float | None = None
        while True:
            with contextlib.suppress(OSError):
                mtime = path.stat().st_mtime
                if mtime != seen:
                    seen = mtime
                    await self.sync_provisioned()
            await asyncio.sleep(interval)

    def function_target(self, function_name: str, qualifier: str | None) -> FunctionUrl | None:
        """The registered function `function_name:qualifier`; unqualified (or `$LATEST`), its only registration."""
        target = self._targets.get(f"lambda:{function_name}:{qualifier}")
        if isinstance(target, FunctionUrl):
            return target
        if qualifier in (None, "$LATEST"):
            candidates = [t for t in self._targets.values()
                          if isinstance(t, FunctionUrl) and t.config.name == function_name]
            if len(candidates) == 1:
                return candidates[0]
        return None

    def routed(self, target: FunctionUrl) -> FunctionUrl:
        """Which version serves one request to `target`: an alias with RoutingConfig sends each of its other versions
        its weight's share of requests (`alias_weights.choose`: a random draw per request), the rest to its own
        version."""
        version = choose(target.config.version, target.config.weights)
        if version == target.config.version:
            return target
        other = self._targets.get(f"lambda:{target.config.name}:{version}")
        return other if isinstance(other, FunctionUrl) else target

    def meter(self, called: FunctionUrl, ran: FunctionUrl, result: InvokeResult, *, qualified: bool = True) -> None:
        """One call's Lambda service metrics: `called` the target the caller named, `ran` the version the alias's
        weights picked (the same target without weights)."""
        if self.metrics is None:
            return
        qualifier = called.config.qualifier if qualified and called.config.qualifier != "$LATEST" else ""
        version = ran.config.version if qualifier else "$LATEST"
        self.metrics.record_invocation(Invocation(
            called.config.name, version, result.duration_ms, error=result.status not in ("ok", "throttled"),
            throttled=result.status == "throttled", qualifier=qualifier))

    def desired_tasks(self, cluster: str, service: str) -> int | None:
        """The ECS service's desired task count in the control plane (None: no control plane or no such service)."""
        if self.ecs is None:
            return None
        found = self.ecs.describe_services(cluster=cluster, services=[service]).get("services") or []
        return int(found[0]["desiredCount"]) if found else None

    def meter_front(self, call: FrontCall) -> None:
        """One request to a SageMaker endpoint or ECS service: the metrics its fronts publish (`front_metrics`)."""
        if self.metrics is not None:
            self.metrics.record_front(call)

    def _forward(self, log_forward: Forward | None) -> Forward | None:
        """Each sandbox log line also to the metrics sink (its EMF documents become metrics)."""
        if self.metrics is None:
            return log_forward

        def forward(group: str, stream: str, timestamp: int, message: str) -> None:
            if self.metrics is not None:
                self.metrics.record_log_line(message)
            if log_forward is not None:
                log_forward(group, stream, timestamp, message)

        return forward

    async def aunregister(self, key: str, *, save: bool = True) -> bool:
        target = self._targets.pop(key, None)
        if target is None:
            return False
        if _public(target.config):
            self.gateway.remove(target)
            if self._urls.get(key) == target.config.port:  # the URL lives on: its port answers why it is not served
                self.gateway.add(self._unserved(key, target.config.account, target.config.region), target.config.port)
            else:
                await self._close(target.config.port)
        if isinstance(target, FunctionUrl):
            self._retire_later(target)
        else:
            await target.close()
        if save:
            self._save()
        return True

    def _retire_later(self, target: FunctionUrl) -> None:
        """Close a function's sandboxes once the calls they run have ended (at most its timeout), in the
        background: a call the alias's weights sent to a version that is no longer served still answers."""
        async def retire() -> None:
            await target.pool.drain(target.config.timeout_s)
            await target.pool.close()

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def astatus(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shared_port": self.gateway.shared_port, "ca": str(self.tls.ca), "targets": []}
        for target in self._targets.values():
            entry = {**self._endpoint(target).to_json(), "config": target.config.to_json()}
            if isinstance(target, FunctionUrl):
                c = target.config
                entry["settings"] = {"memory_mb": c.memory_mb, "timeout_s": c.timeout_s, "reserved": c.reserved,
                                     "provisioned": c.provisioned, "idle_s": c.idle_s, "version": c.version}
                entry["pool"] = dataclasses.asdict(target.pool.snapshot())
            else:
                entry["instance"] = target.describe()
            out["targets"].append(entry)
        if self.reconciler is not None:
            out["problems"] = dict(self.reconciler.problems)
        return out

    # ------------------------------------------------------------------ Function URL ports (see `url_ports`)

    async def _bind(self, port: int) -> int:
        """Listen on `port` (0: a port the kernel picks); a taken port is an error, never another port."""
        actual = await self.gateway.listen(port)
        if port and actual != port:
            await self.gateway.close_port(actual)
            raise OSError(f"port {port} is taken by another process")
        self._listening.add(actual)
        return actual

    async def _close(self, port: int) -> None:
        self._listening.discard(port)
        await self.gateway.close_port(port)

    def _unserved(self, key: str, account: str, region: str) -> UnservedUrl:
        return UnservedUrl(key, account, region,
                           lambda: self.reconciler.problems.get(key) if self.reconciler is not None else None)

    async def _rebind_url(self, key: str, port: int) -> None:
        try:
            await self._bind(port)
        except OSError as exc:
            print(f"mlfn data plane: the Function URL of {key} cannot be served: {exc}", flush=True)
            if self.reconciler is not None:
                self.reconciler.problems[key] = f"its port {port} is taken by another process"
            return
        self._urls[key] = port
        self.gateway.add(self._unserved(key, ACCOUNT, REGION), port)

    async def areserve_url(self, function: str, qualifier: str | None, *, account: str = ACCOUNT,
                           region: str = REGION) -> str:
        """Bind the port of a new Function URL (the control plane asks, on CreateFunctionUrlConfig) and return its
        URL; the same function alias gets the same URL for as long as it keeps one."""
        key = url_key(function, qualifier)
        port = self._urls.get(key)
        if port is None or port not in self._listening:
            port = await self._bind(0)
            self._urls[key] = port
            self.gateway.add(self._unserved(key, account, region), port)
            self._save()
        return f"https://127.0.0.1:{port}/"

    async def arelease_url(self, key: str) -> None:
        """The Function URL was deleted: stop serving it and free its port."""
        port = self._urls.pop(key, None)
        if port is None:
            return
        if key in self._targets:
            await self.aunregister(key)
        else:
            for target in [t for p, t in self.gateway.by_port.items() if p == port]:
                self.gateway.remove(target)
            await self._close(port)
        self._save()

    def reserved_urls(self) -> dict[str, int]:
        return dict(self._urls)

    def container_keys(self) -> set[str]:
        """The SageMaker endpoints and ECS services served now."""
        return {k for k, t in self._targets.items() if isinstance(t, ContainerEndpoint)}

    def target_configs(self) -> dict[str, FunctionConfig]:
        """The settings of every function served now, by key."""
        return {k: t.config for k, t in self._targets.items() if isinstance(t, FunctionUrl)}

    async def ainvoke(self, function: str, qualifier: str | None, payload: bytes, *, event: bool = False,
                      tail: bool = False) -> HttpReply:
        """One Invoke API call on `function:qualifier`'s sandboxes (the control plane's Invoke hands it over), as
        Lambda answers it (`invoke_api`); LookupError when nothing here can run it, saying why."""
        qualifier = qualifier or "$LATEST"
        if f"lambda:{function}:{qualifier}" not in self._targets and self.reconciler is not None:
            await self.reconciler.ensure(function, qualifier)
        target = self.function_target(function, qualifier)
        if target is None:
            why = self.reconciler.problems.get(f"lambda:{function}:{qualifier}") if self.reconciler else None
            raise LookupError(why or f"the local data plane does not serve {function}:{qualifier}")
        called, target = target, self.routed(target)
        version = "$LATEST" if qualifier == "$LATEST" else target.config.version
        group = target.config.log_group
        log_tail = (lambda request_id: self._log_tail(group, request_id)) if tail else None

        def meter(result: InvokeResult) -> None:
            self.meter(called, target, result, qualified=qualifier != "$LATEST")

        return await invoke_api.invoke(target.pool, payload, version, event=event, log_tail=log_tail, meter=meter)

    async def ainvoke_endpoint(self, endpoint: str, headers: dict[str, str], body: bytes) -> HttpReply:
        """One sagemaker-runtime InvokeEndpoint (from the control plane) on the endpoint's container."""
        target = self._targets.get(f"sagemaker:{endpoint}")
        if target is None and self.reconciler is not None:
            await self.reconciler.reconcile()  # created a moment ago: serve it now
            target = self._targets.get(f"sagemaker:{endpoint}")
        if not isinstance(target, ContainerEndpoint):
            why = self.reconciler.problems.get(f"sagemaker:{endpoint}") if self.reconciler else None
            raise LookupError(f"the local data plane does not serve endpoint {endpoint}: "
                              f"{why or 'it is not InService, or its model has no image in the emulator ECR'}")
        request = GatewayRequest(method="POST", raw_path=f"/endpoints/{endpoint}/invocations", raw_query="",
                                 headers=list(headers.items()), body=body, source_ip="127.0.0.1", host="",
                                 request_id=str(uuid.uuid4()))
        return await target.handle(request, None)

    def _log_tail(self, group: str, request_id: str, limit: int = 4096) -> bytes:
        """The last `limit` bytes of one invocation's log lines (START to REPORT), as Lambda's LogResult holds."""
        lines: list[str] = []
        stream = None
        for event in self.logs.read(group):
            message = str(event["message"])
            if stream is None and message.startswith(f"START RequestId: {request_id}"):
                stream = event["logStreamName"]
            if stream is not None and event["logStreamName"] == stream:
                lines.append(message if message.endswith("\n") else message + "\n")
                if message.startswith(f"REPORT RequestId: {request_id}"):
                    break
        return "".join(lines).encode()[-limit:]

    def _save(self) -> None:
        if self.persist:
            write_json(self.folder / "registrations.json",
                       [t.config.to_json() for t in self._targets.values() if getattr(t.config, "saved", True)])
            write_json(self.folder / "urls.json", self._urls)

    def _endpoint(self, target: FunctionUrl | ContainerEndpoint) -> Registration:
        c = target.config
        kind = "lambda" if isinstance(c, FunctionConfig) else c.kind
        domain = {"lambda": "lambda-url", "sagemaker": "sagemaker", "ecs": "ecs"}[kind]
        return Registration(key=c.key, kind=kind, name=c.name, url=f"https://127.0.0.1:{c.port}/",
                        host_url=f"https://{c.url_id}.{domain}.{c.region}.localhost:{self.gateway.shared_port}/",
                        url_id=c.url_id, port=c.port, auth_type=c.auth_type, region=c.region,
                        signing_service=target.signing_service, ca_path=str(self.tls.ca),
                        isolation=(target.pool.run if isinstance(target, FunctionUrl) else target.run).mode)


def config_for_model(model_dir: str | Path, *, name: str | None = None, stage: str = "dev", url: str | None = None,
                     target: str | None = None, **overrides: Any) -> FunctionConfig | ContainerConfig:
    """The registration of a model directory for its `target`, from the settings of its mlfn.toml (`load_spec`).

    `name` is the function / endpoint / service name (default `mlfn-<model>-<stage>`); `target` the one the stack
    was deployed for (`mlfn deploy --target`; default the spec's); `overrides` win over the spec's settings
    (e.g. `auth_type="NONE"`, `idle_s=5`); `url` (the control plane's) fixes the port.
    """
    from mlfn.runtime.spec import load_spec

    from ..packaging.dependencies import host_env

    spec = load_spec(model_dir)
    spec = spec.with_target(target) if target else spec
    s = spec.settings
    common: dict[str, Any] = dict(name=name or f"mlfn-{spec.name}-{stage}", model_dir=str(Path(model_dir).resolve()),
                                  auth_type="AWS_IAM" if s.auth.type == "iam" else "NONE", port=_port_of(url))
    deps_env = host_env(model_dir)  # the folder's requirements.txt, installed for this machine's Python
    if deps_env:
        common["env"] = deps_env
    if spec.target == "lambda":
        lam = s.lambda_
        cors = {"AllowOrigins": list(s.auth.cors_origins), "AllowMethods": ["GET", "POST"],
                "AllowHeaders": list(SIGV4_HEADERS), "MaxAge": 3600} if s.auth.cors_origins else None
        settings = dict(memory_mb=lam.memory_mb, timeout_s=lam.timeout_s, reserved=lam.reserved_concurrency,
                        provisioned=lam.provisioned_min, idle_s=lam.idle_timeout_s, cors=cors, qualifier="live",
                        snapstart=lam.snapstart)
        return FunctionConfig(**{**common, **settings, **overrides})
    if spec.target == "sagemaker":
        sm = s.sagemaker
        settings = dict(kind="sagemaker", memory_mb=sm.serverless_memory_mb if sm.serverless else sm.memory_per_copy_mb)
    else:
        settings = dict(kind="ecs", memory_mb=s.ecs.memory_mb, idle_s=s.ecs.idle_minutes * 60)
    return ContainerConfig(**{**common, **settings, **overrides})


def _client(service: str, control_plane: str) -> Any:
    """A boto3 client of `service` to the control plane (its default region)."""
    import boto3

    from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY

    return boto3.client(service, endpoint_url=control_plane, region_name=LOCAL_REGION,
                        aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY)


def _replaceable(old: FunctionUrl | ContainerEndpoint, config: FunctionConfig | ContainerConfig) -> bool:
    """A function registered again (e.g. its alias moved to another version) takes over the old one's URL in place."""
    return (isinstance(old, FunctionUrl) and isinstance(config, FunctionConfig)
            and _public(old.config) == _public(config) and config.port == old.config.port)


def _public(config: FunctionConfig | ContainerConfig) -> bool:
    return not isinstance(config, FunctionConfig) or config.public


def _port_of(url: str | None) -> int:
    return (urlsplit(url).port or 0) if url else 0


# ---------------------------------------------------------------------- as a process, with an admin API


class _Admin:
    """Plain-HTTP admin API on 127.0.0.1 for other processes (bearer token required)."""

    def __init__(self, plane: DataPlane, token: str, stop: asyncio.Event) -> None:
        self.plane, self.token, self.stop = plane, token, stop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict((k.decode().lower(), v.decode()) for k, v in scope["headers"])
        status, document = await self._route(scope["method"], scope["path"], headers, body)
        data = json.dumps(document).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "POST" and path == "/urls":  # the control plane's CreateFunctionUrlConfig: bind, report
            call = json.loads(body)
            try:
                url = await self.plane.areserve_url(call["function"], call.get("qualifier"),
                                                    account=call.get("account", ACCOUNT),
                                                    region=call.get("region", REGION))
            except OSError as exc:
                return 503, {"error": f"no port for the Function URL: {exc}"}
            return 200, {"url": url}
        if method == "POST" and path == "/invoke-endpoint":  # the control plane's sagemaker-runtime InvokeEndpoint
            call = json.loads(body)
            try:
                reply = await self.plane.ainvoke_endpoint(call["endpoint"], dict(call.get("headers") or {}),
                                                          base64.b64decode(call.get("body", "")))
            except LookupError as exc:
                return 404, {"error": str(exc.args[0])}
            return 200, {"status": reply.status, "headers": reply.headers,
                         "body": base64.b64encode(reply.body).decode()}
        if method == "POST" and path == "/reconcile":  # the control plane changed what it holds (`change_notice`)
            return await self._reconcile()
        if method == "POST" and path == "/invoke":  # the control plane's Lambda Invoke (moto's is unauthenticated)
            try:
                call = json.loads(body)
                reply = await self.plane.ainvoke(call["function"], call.get("qualifier"),
                                                 base64.b64decode(call.get("payload", "")),
                                                 event=bool(call.get("event")), tail=bool(call.get("tail")))
            except LookupError as exc:
                return 404, {"error": str(exc.args[0]) if exc.args else "missing field"}
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
            return 200, invoke_api.reply_to_json(reply)
        if not secrets.compare_digest(headers.get("authorization", ""), f"Bearer {self.token}"):
            return 401, {"error": "missing or wrong admin token"}
        try:
            if method == "GET" and path == "/status":
                return 200, await self.plane.astatus()
            if method == "POST" and path == "/register":
                endpoint = await self.plane.aregister(config_from_json(json.loads(body)))
                return 200, endpoint.to_json()
            if method == "POST" and path == "/unregister":
                return 200, {"removed": await self.plane.aunregister(json.loads(body)["key"])}
            if method == "POST" and path == "/shutdown":
                self.stop.set()
                return 200, {"stopping": True}
        except (ValueError, TypeError, KeyError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"{method} {path} is not an admin operation"}

    async def _reconcile(self) -> tuple[int, Any]:
        """Follow the control plane now (a pass that reads it after this request); it carries nothing but the
        nudge, so it needs no token. The pass goes on if the caller stops waiting."""
        reconciler = self.plane.reconciler
        if reconciler is None:
            return 200, {"reconciled": False, "why": "this data plane follows no control plane"}
        try:
            await asyncio.shield(asyncio.ensure_future(reconciler.reconcile()))
        except Exception as exc:  # the control plane did not answer the pass's reads: the poll tries again
            return 503, {"reconciled": False, "error": str(exc)}
        return 200, {"reconciled": True}


async def serve(state: str | Path | None, *, echo_logs: bool, control_plane: str | None = None) -> None:
    """Run the data plane in this process until SIGINT/SIGTERM or POST /shutdown. With `control_plane` (its URL)
    the functions it holds are served (see `reconciler`) and sandbox logs also go to its CloudWatch Logs."""
    import uvicorn

    forward = None
    if control_plane:
        from .cloudwatch_logs import CloudWatchLogsForwarder

        forward = CloudWatchLogsForwarder(control_plane)
    plane = DataPlane(state, echo_logs=echo_logs, log_forward=forward, control_plane=control_plane)
    await plane.astart()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token = secrets.token_urlsafe(24)
    config = uvicorn.Config(_Admin(plane, token, stop), host="127.0.0.1", port=0, lifespan="off",
                            access_log=False, log_level="warning")
    admin = QuietServer(config)
    task = asyncio.create_task(admin.serve())
    while not admin.started:
        await asyncio.sleep(0.01)
    port = admin.servers[0].sockets[0].getsockname()[1]
    admin_file = plane.folder / "admin.json"
    write_json(admin_file, {"url": f"http://127.0.0.1:{port}", "token": token, "pid": os.getpid()})
    os.chmod(admin_file, 0o600)
    publish_address(plane.state_dir, DATA_PLANE, f"http://127.0.0.1:{port}")  # where Invoke goes (no token)
    print(f"mlfn data plane: gateway https://127.0.0.1:{plane.gateway.shared_port}/, admin http://127.0.0.1:{port}",
          flush=True)
    for ep in plane.endpoints():
        print(f"  {ep.key}: {ep.url}", flush=True)
    print(trust_hint(plane.ca_path), flush=True)
    await stop.wait()
    admin.should_exit = True
    await task
    await plane.astop()
    admin_file.unlink(missing_ok=True)
    withdraw_address(plane.state_dir, DATA_PLANE)
    if forward is not None:
        forward.close()


class DataPlaneClient:
    """Talk to a data plane process started with `python -m mlfn.cli.local.data_plane`."""

    def __init__(self, state: str | Path | None = None, timeout: float = 120) -> None:
        folder = state_dir(state).resolve() / "data-plane"
        admin = read_json(folder / "admin.json")
        if not isinstance(admin, dict):
            raise RuntimeError(f"no data plane is running for {folder.parent} (no admin.json)")
        import httpx

        self._client = httpx.Client(base_url=admin["url"], timeout=timeout,
                                    headers={"authorization": f"Bearer {admin['token']}"})

    def _post(self, path: str, document: dict[str, Any]) -> Any:
        response = self._client.post(path, json=document)
        if response.status_code != 200:
            raise ValueError(response.json().get("error", response.text))
        return response.json()

    def register_lambda(self, function_name: str, model_dir: str | Path, *, alias: str = "live",
                        url: str | None = None, **settings: Any) -> dict[str, Any]:
        config = FunctionConfig(name=function_name, model_dir=str(Path(model_dir).resolve()), qualifier=alias,
                                port=_port_of(url), **settings)
        return dict(self._post("/register", config.to_json()))

    def register_container(self, name: str, model_dir: str | Path, *, url: str | None = None,
                           **settings: Any) -> dict[str, Any]:
        config = ContainerConfig(name=name, model_dir=str(Path(model_dir).resolve()), port=_port_of(url), **settings)
        return dict(self._post("/register", config.to_json()))

    def register_model(self, model_dir: str | Path, *, name: str | None = None, stage: str = "dev",
                       url: str | None = None, target: str | None = None, **overrides: Any) -> dict[str, Any]:
        config = config_for_model(model_dir, name=name, stage=stage, url=url, target=target, **overrides)
        return dict(self._post("/register", config.to_json()))

    def unregister(self, key: str) -> bool:
        return bool(self._post("/unregister", {"key": key})["removed"])

    def status(self) -> dict[str, Any]:
        return dict(self._client.get("/status").json())

    def shutdown(self) -> None:
        self._post("/shutdown", {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlfn.cli.local.data_plane",
                                     description="Run the local emulator's data plane (sandboxes + HTTPS gateway).")
    parser.add_argument("--state-dir", help="emulator state directory (default: $MLFN_HOME/local or ./.mlfn/local)")
    parser.add_argument("--echo-logs", action="store_true", help="also print sandbox logs to stderr")
    parser.add_argument("--control-plane", metavar="URL",
                        help="serve the Lambda functions the control plane at URL holds, and send sandbox logs to "
                             "its CloudWatch Logs")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.state_dir, echo_logs=args.echo_logs, control_plane=args.control_plane))


if __name__ == "__main__":
    main()
