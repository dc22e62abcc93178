"""The container entry point: `python -m mlfn.runtime.server [serve] [--model-dir D] [--host H] [--port P]`.

SageMaker starts an image as `docker run IMAGE serve` and wants it to accept connections within 250 ms,
then polls `GET /ping` (2 s timeout) until it answers 200. Loading a model takes longer than 250 ms, and so
does importing uvicorn and FastAPI. So this module binds and listens on the port first, with nothing but
the standard library imported (the kernel completes TCP handshakes from then on), loads the model in a
background thread while the web stack imports, and serves at once: until the model is loaded, `/ping`,
`/v2/health/ready` and inference answer 503 (with Retry-After) and `/v2/health/live` answers 200. A model
that fails to load stops the server with exit code 1 and the reason on stderr.

Port: `--port`, else `MLFN_PORT`, else `SAGEMAKER_BIND_TO_PORT` (multi-container endpoints), else 8080.
Model directory: `--model-dir`, else `MLFN_MODEL_DIR`, else `/opt/mlfn/model`. One process serves HTTP/1.1
with mlfn's own lean server (`mlfn.runtime.http11`: httptools' parser on uvloop, the serving core called
directly) and builds the FastAPI docs app only when a docs page is first asked for; `MLFN_HTTP=uvicorn` runs
the full FastAPI app under uvicorn instead. Quick model runs go inline, slower ones to a thread pool sized to
the CPU share; with `[batching] max_batch_size > 1` concurrent requests run as batches (`mlfn.runtime.batching`).
SIGTERM stops accepting, lets in-flight requests finish (up to 25 s: SageMaker and ECS kill 30 s after SIGTERM)
and exits 0. Idle keep-alive connections are kept 75 s, longer than a load balancer's idle timeout
(`--keep-alive` or `MLFN_KEEP_ALIVE_S`); a request body not complete 60 s after its head gets 408 and a close
(`--body-timeout` or `MLFN_BODY_TIMEOUT_S`), so a client that stops half-way holds no connection for good.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the start timer comes first
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import Future  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    from .metrics import MetricsProvider

log = logging.getLogger("mlfn.runtime.server")

DEFAULT_MODEL_DIR = "/opt/mlfn/model"
DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_S = 25
# Idle keep-alive connections stay open longer than a load balancer's idle timeout (ALB: 60 s by default), so
# the balancer, not the server, closes them; otherwise a request can race the close and get a 502.
KEEP_ALIVE_S = 75
BODY_TIMEOUT_S = 60  # longest a request body may take to arrive after its head
BACKLOG = 2048


def default_port(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    env = os.environ if environ is None else environ
    for name in ("MLFN_PORT", "SAGEMAKER_BIND_TO_PORT"):
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit() or not 0 <= int(value) <= 65535:
                raise SystemExit(f"mlfn server: error: {name} must be a port number, got {value!r}")
            return int(value)
    return DEFAULT_PORT


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mlfn.runtime.server", description="Serve one ONNX model directory over HTTP."
    )
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"],
                        help="`serve` (what SageMaker passes); the default")
    parser.add_argument("--model-dir", default=os.environ.get("MLFN_MODEL_DIR", DEFAULT_MODEL_DIR),
                        help="model directory (default: $MLFN_MODEL_DIR or /opt/mlfn/model)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: $MLFN_PORT, $SAGEMAKER_BIND_TO_PORT or 8080; 0 picks a free one)")
    parser.add_argument("--access-log", action="store_true",
                        default=os.environ.get("MLFN_ACCESS_LOG", "") not in ("", "0", "false"),
                        help="log one line per request with its request id (default: $MLFN_ACCESS_LOG or off)")
    parser.add_argument("--log-level", default=os.environ.get("MLFN_LOG_LEVEL", "info"),
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--keep-alive", type=_seconds, default=os.environ.get("MLFN_KEEP_ALIVE_S", KEEP_ALIVE_S),
                        help=f"seconds an idle connection is kept (default: $MLFN_KEEP_ALIVE_S or {KEEP_ALIVE_S})")
    parser.add_argument("--body-timeout", type=_seconds,
                        default=os.environ.get("MLFN_BODY_TIMEOUT_S", BODY_TIMEOUT_S),
                        help="seconds a request body may take to arrive after its head; then 408 and a close "
                             f"(default: $MLFN_BODY_TIMEOUT_S or {BODY_TIMEOUT_S})")
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = default_port()
    return args


def _seconds(text: str | float) -> float:
    """A positive number of seconds (argparse applies this to the environment defaults too)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def bind(host: str, port: int) -> socket.socket:
    """A listening socket: from here on the kernel accepts connections, before anything heavy is imported."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.set_inheritable(True)
    return sock


def load_in_background(model_dir: str, metrics: MetricsProvider) -> Future[Any]:
    """Start loading the model in a thread; the Future holds the InferenceService or the load's error."""
    future: Future[Any] = Future()

    def load() -> None:
        try:
            from .asgi import load_service
            from .batching import install

            service = load_service(model_dir, metrics)
            batcher = install(service, on_batch=metrics.batch)
            if batcher is not None:
                log.info("dynamic batching: up to %d rows per run, waiting at most %.1f ms for company",
                         batcher.max_rows, batcher.max_wait_s * 1000)
            future.set_result(service)
        except BaseException as exc:  # handed to the main thread through the Future
            future.set_exception(exc)

    threading.Thread(target=load, name="mlfn-load", daemon=True).start()
    return future


def serve(args: argparse.Namespace) -> int:
    """Bind, load, serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if the model failed to load.

    A port that cannot be bound raises MlfnError (the CLI prints it as one line)."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        from .errors import MlfnError

        reason = (exc.strerror or str(exc)).split(" (while attempting")[0]
        raise MlfnError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("listening on http://%s:%s (model loading from %s)", shown, port, args.model_dir)

    from .metrics.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics()
    future = load_in_background(args.model_dir, metrics)

    lean = os.environ.get("MLFN_HTTP", "").strip().lower() != "uvicorn" and _fastest("httptools", "") == "httptools"
    if lean:  # FastAPI (the docs pages) is imported on the first request for them, not at start
        from .asgi import ServingCore
        from .docs import DOCS_PATHS, LazyDocs

        core = ServingCore(future, metrics=metrics, access_log=args.access_log, fallback_paths=DOCS_PATHS)
        core.fallback = LazyDocs(core)
        app: Any = core
    else:
        from .app import create_app

        app = create_app(future, metrics=metrics, access_log=args.access_log)
        core = app.core
    failed: list[BaseException] = []
    stop_hooks: list[Any] = []

    def loaded(done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            failed.append(error)
            for stop in stop_hooks:
                stop()
            return
        ready = time.perf_counter() - STARTED
        metrics.cold_start(ready)
        service = done.result()
        log.info("model %s ready in %.0f ms after start: %s", service.spec.name, ready * 1000, service.model.describe())

    try:
        if lean:
            stopped_by = _run_lean(core, sock, args, future, loaded, stop_hooks)
        else:
            stopped_by = _run_uvicorn(app, sock, args, future, loaded, stop_hooks)
    finally:
        core.shutdown()
        sock.close()
    if failed:
        from .errors import MlfnError

        error = failed[0]
        if isinstance(error, MlfnError):  # a message meant for a person: no traceback
            log.error("model failed to load: %s", error)
        else:
            log.error("model failed to load", exc_info=error)
        return 1
    return 130 if signal.SIGINT in stopped_by else 0


def _run_lean(core: Any, sock: socket.socket, args: argparse.Namespace, future: Future[Any], loaded: Any,
              stop_hooks: list[Any]) -> list[int]:
    """Serve the core with mlfn's own HTTP/1.1 server (`mlfn.runtime.http11`) on uvloop when installed; the
    signals that stopped it. No lifespan: the core needs none, and the docs app loads on first use."""
    import asyncio

    from .http11 import Server

    server = Server(core, body_limit=core.body_limit, keep_alive_s=args.keep_alive, body_timeout_s=args.body_timeout,
                    graceful_s=GRACEFUL_SHUTDOWN_S, refuses_large=lambda path: core.router.match(path) is not None)
    received: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop(sig: int | None = None) -> None:
            if sig is not None:
                received.append(sig)
            server.shutdown()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        stop_hooks.append(lambda: loop.call_soon_threadsafe(stop))
        future.add_done_callback(loaded)
        await server.serve([sock], lifespan=False)

    factory = None
    if _fastest("uvloop", "asyncio") == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    return received


def _run_uvicorn(app: Any, sock: socket.socket, args: argparse.Namespace, future: Future[Any], loaded: Any,
                 stop_hooks: list[Any]) -> list[int]:
    """Serve with uvicorn (MLFN_HTTP=uvicorn): the same app, uvicorn's HTTP layer (which has no body timeout of
    its own: `BodyDeadline` gives it one)."""
    import uvicorn

    from .request_body import BodyDeadline

    loop, http = _fastest("uvloop", "asyncio"), _fastest("httptools", "h11")
    log.debug("event loop %s, HTTP parser %s", loop, http)
    config = uvicorn.Config(
        BodyDeadline(app, args.body_timeout), loop=loop, http=http, lifespan="on", log_config=None,
        log_level=args.log_level, access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=max(1, round(args.keep_alive)),
        server_header=False,
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    stop_hooks.append(stop)
    future.add_done_callback(loaded)
    stopped_by = _record_stop_signals(server)
    server.run(sockets=[sock])
    return stopped_by


def _fastest(preferred: str, fallback: str) -> str:
    """uvloop and httptools when installed (uvicorn[standard] brings both), else the pure-Python ones."""
    import importlib.util

    return preferred if importlib.util.find_spec(preferred) is not None else fallback


def _record_stop_signals(server: Any) -> list[int]:
    """Handlers uvicorn restores and re-raises into after its graceful shutdown: they record the signal (and
    stop a server that has not installed its own handlers yet), so SIGTERM ends in exit code 0 (Ctrl-C in
    130) rather than the process being killed by the re-raised signal."""
    received: list[int] = []

    def record(sig: int, frame: Any) -> None:
        received.append(sig)
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, record)
    return received


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import MlfnError

    try:
        return serve(parse_args(argv))
    except MlfnError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
