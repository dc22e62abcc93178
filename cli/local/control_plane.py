"""The emulator's control plane: moto's server on 127.0.0.1 with mlfn's extensions, so the templates mlfn synthesizes
deploy whole through the real boto3 code path (AWS_ENDPOINT_URL=http://127.0.0.1:PORT) and their outputs resolve.

    with ControlPlane(state_dir=tmp) as cp:          # port 0: the kernel picks one
        os.environ["AWS_ENDPOINT_URL"] = cp.url
        ...

    python -m mlfn.cli.local.control_plane --port 0 --state-dir .mlfn/local   # what `mlfn local start` runs

Extensions (each module says what it adds and why): `cfn_engine` (resource events, rollback, change-set states),
`cfn_lambda` (Function with image properties, Version, Alias, Url, Permission, LogGroup), `cfn_scaling`
(ScalableTarget, ScalingPolicy and the SageMaker dimensions), `cfn_sagemaker` (InferenceComponent), `cfn_cloudwatch`
(Alarm), `cfn_apigw` (HTTP APIs), `cfn_generic` (any other type: recorded without behaviour), `lambda_api`
(Function URLs per alias, provisioned concurrency), `sagemaker_api` (inference components, modern instance types),
`seeds` (the CDK bootstrap version and ECS AMI parameters), `alarms` (evaluates CloudWatch alarms and runs their
step-scaling actions; `alarm_time_scale` wall seconds stand for one AWS second, `MLFN_ALARM_TIME_SCALE` for the
process). Function URLs are `https://127.0.0.1:<port>/`
(see `function_urls`); the records are mirrored to `<state>/function-urls.json` for the data plane.

`start_process(state_dir)` / `running_url(state_dir)` / `stop_process(state_dir)` run it as a background process
(what `mlfn local start|status|stop` need). The process writes `<state>/control-plane.json`
(`{"url": "http://127.0.0.1:PORT", "pid": ...}`) once it listens, prints the URL on stdout, and removes the file
when stopped (SIGTERM or Ctrl-C). `client_environment(url)` is the environment that points boto3 at it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
import urllib.request
from pathlib import Path
from types import TracebackType

from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
from . import moto_adapter
from .emulated_stores import STORES
from .emulator_state import CONTROL_PLANE, publish_address, state_dir, withdraw_address
from .function_urls import UrlAllocator, set_url_allocator
from .processes import alive, spawn_until_ready, terminate

DEFAULT_ACCOUNT = "123456789012"
STATE_FILE = "control-plane-state.pickle"  # moto's backends, saved when the control plane stops
DEFAULT_REGIONS = (LOCAL_REGION,)
_installed = False
_install_lock = threading.Lock()


def install_extensions() -> None:
    """Register every mlfn extension with moto (in this process). Idempotent; call before the server's first request."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from . import (
            alarm_history,
            cfn_apigw,  # noqa: F401 - registers its models
            cfn_base,
            cfn_cloudwatch,  # noqa: F401
            cfn_codedeploy,  # noqa: F401
            cfn_ecs,
            cfn_elbv2,
            cfn_engine,
            cfn_generic,
            cfn_lambda,  # noqa: F401
            cfn_sagemaker,  # noqa: F401
            cfn_scaling,
            codedeploy,
            iam_callers,
            lambda_api,
            sagemaker_api,
            sagemaker_runtime,
        )

        cfn_base.install(cfn_generic.GenericResource.for_type)
        cfn_engine.install()
        cfn_scaling.install()
        cfn_elbv2.install()
        cfn_ecs.install()
        lambda_api.install()
        sagemaker_api.install()
        iam_callers.install()
        sagemaker_runtime.install()
        codedeploy.install()
        alarm_history.install()  # DescribeAlarmHistory (which alarm stopped a rollout, and its value)
        from . import batch_transform  # Batch Transform job statuses (mlfn batch --local)

        batch_transform.install()
        _installed = True


def client_environment(url: str) -> dict[str, str]:
    """The environment that points boto3 (and the AWS CLI) at the emulator listening at `url`."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "AWS_DEFAULT_REGION": DEFAULT_REGIONS[0],
        "AWS_REGION": DEFAULT_REGIONS[0],
    }


class ControlPlane:
    """moto's ThreadedMotoServer with mlfn's extensions, in this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | Path | None = None,
        url_allocator: UrlAllocator | None = None,
        regions: tuple[str, ...] = DEFAULT_REGIONS,
        asynchronous: bool = True,
        resource_delay_s: float = 0.0,
        alarm_time_scale: float = 1.0,
    ) -> None:
        self.host, self.port = host, port
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.url_allocator = url_allocator
        self.regions = regions
        self.asynchronous, self.resource_delay_s = asynchronous, resource_delay_s
        self._server: object | None = None
        self.url = ""
        from .alarms import AlarmEvaluator

        self.alarms = AlarmEvaluator(time_scale=alarm_time_scale)

    def start(self) -> str:
        """Start listening; returns the endpoint URL (`http://127.0.0.1:PORT`)."""
        if self.port:  # moto's server thread would hang on a taken port instead of failing: check first
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((self.host, self.port))
        install_extensions()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise here
        from moto.server import ThreadedMotoServer

        from . import seeds
        from .cfn_engine import SETTINGS

        SETTINGS.asynchronous, SETTINGS.resource_delay_s = self.asynchronous, self.resource_delay_s
        from .change_notice import Notifier
        from .lambda_api import data_plane_address, data_plane_allocator

        set_url_allocator(self.url_allocator or data_plane_allocator(self.state_dir))
        state = self.state_dir  # a Lambda or SageMaker change reaches the data plane at once (`change_notice`)
        moto_adapter.notify_changes(Notifier(lambda: data_plane_address(state)).changed)
        STORES.state_dir = self.state_dir
        moto_adapter.set_state_dir(self.state_dir)  # pushed layers go to its registry storage
        if self.state_dir is not None:  # what the previous control plane of this state directory held
            STORES.load()
            try:
                moto_adapter.load_state(self.state_dir / STATE_FILE)
            except moto_adapter.MotoChanged as exc:
                print(f"control plane: {exc}", file=sys.stderr)
            from . import batch_transform, distributed_map  # jobs the stop cut short: no runner any more

            batch_transform.recover()
            distributed_map.recover()
        STORES.save()
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        from .distributed_map import install as run_distributed_maps  # StartExecution runs a Distributed Map
        run_distributed_maps(self.url)
        # Lambda must never try Docker here: `invoke` through moto echoes; the data plane runs functions.
        self._post("/moto-api/config", {"lambda": {"use_docker": False}, "batch": {"use_docker": False}})
        for region in self.regions:
            seeds.seed(DEFAULT_ACCOUNT, region)
        from . import codedeploy, pre_traffic

        codedeploy.SETTINGS.endpoint_url, codedeploy.SETTINGS.time_scale = self.url, self.alarms.time_scale
        codedeploy.SETTINGS.pre_traffic = pre_traffic.checker(self.url, DEFAULT_REGIONS[0], LOCAL_ACCESS_KEY,
                                                              LOCAL_SECRET_KEY)
        self.alarms.start()
        return self.url

    def _post(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self.alarms.stop()
        moto_adapter.notify_changes(None)
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None
            if self.state_dir is not None:  # kept for the next start (`mlfn local reset` deletes it)
                left_out = moto_adapter.save_state(self.state_dir / STATE_FILE)
                if left_out:
                    print(f"control plane: not kept across a restart: {', '.join(left_out)}", file=sys.stderr)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def running_url(directory: str | Path | None = None) -> str | None:
    """The URL of a control plane process serving `directory` (None when there is none, or it died)."""
    from .emulator_state import read_json

    data = read_json(state_dir(directory) / f"{CONTROL_PLANE}.json")
    if not isinstance(data, dict) or not alive(int(data.get("pid", 0))):
        return None
    url = str(data["url"])
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return url
    except OSError:
        return None


def start_process(directory: str | Path | None = None, *, port: int = 0, timeout_s: float = 120) -> str:
    """Start `python -m mlfn.cli.local.control_plane` in the background (unless one serves `directory` already)
    and return its URL once it listens. Its output goes to `<state>/control-plane.log`; raises `StartError`
    (a RuntimeError) when it exits early or does not listen within `timeout_s`."""
    folder = state_dir(directory)
    url = running_url(folder)
    if url:
        return url
    folder.mkdir(parents=True, exist_ok=True)
    return spawn_until_ready(
        [sys.executable, "-m", "mlfn.cli.local.control_plane", "--port", str(port), "--state-dir", str(folder)],
        folder / "control-plane.log", lambda: running_url(folder), what="the control plane", timeout_s=timeout_s,
    )


def stop_process(directory: str | Path | None = None, *, timeout_s: float = 20) -> bool:
    """Stop the control plane process serving `directory`; False when none was running."""
    from .emulator_state import read_json

    path = state_dir(directory) / f"{CONTROL_PLANE}.json"
    data = read_json(path)
    pid = int(data.get("pid", 0)) if isinstance(data, dict) else 0
    if not alive(pid):
        path.unlink(missing_ok=True)
        return False
    terminate(pid, timeout_s=timeout_s)
    path.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlfn.cli.local.control_plane",
        description="Run the mlfn emulator's control plane (moto with mlfn's extensions) on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--state-dir", default=None, help="emulator state directory (default: $MLFN_HOME/local or "
                                                          ".mlfn/local)")
    args = parser.parse_args(argv)
    directory = state_dir(args.state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    from .alarms import time_scale_from_environment

    try:
        time_scale = time_scale_from_environment()
    except ValueError as exc:
        print(f"control plane: {exc}", file=sys.stderr)
        return 2
    plane = ControlPlane(port=args.port, state_dir=directory, alarm_time_scale=time_scale)
    try:
        url = plane.start()
    except OSError as exc:
        print(f"control plane: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    publish_address(directory, CONTROL_PLANE, url)
    print(url, flush=True)
    try:
        stopped.wait()
    finally:
        withdraw_address(directory, CONTROL_PLANE)
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
