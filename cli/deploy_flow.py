"""`mlfn deploy` as one flow of plain steps: validate, build, push, synth, probe, roll out, (locally) serve.

    request = DeployRequest(Path("functions/iris"), local=True)
    spec, target = validate(request)             # every check that needs no AWS call: nothing is created
    outcome = deploy(request, say=info, on_event=lambda e: info(e.line()))

Safety, in order: the model directory, target and stage are checked before anything is created; the region and
credentials (or the emulator) before the image is pushed; the image's own model contents must answer a health probe
before the stack changes; CloudFormation's change set rolls the stack back when a resource fails (the previous
version keeps serving); locally, the data plane moves to the new contents only after the stack update completed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfn.runtime.spec import ModelSpec

from .console import CliError
from .endpoints import Endpoint, data_plane_key, endpoint_for, open_session, registration

Say = Callable[[str], None]
Step = Callable[..., Any]  # fleet hook: step(name, fn, *args, **kwargs) -> fn's result


@dataclass(frozen=True)
class DeployRequest:
    model_dir: Path
    target: str | None = None
    stage: str | None = None
    local: bool = False
    region: str | None = None
    profile: str | None = None
    base: str | None = None  # as `mlfn build --base`; None: the local base, else the shipped descriptor
    wait: bool = True  # False (--no-wait): an update with a canary/linear rollout returns once it started


@dataclass
class DeployOutcome:
    """What a deploy did and where the model now answers."""

    name: str
    stage: str
    target: str
    stack_name: str
    status: str  # CREATED | UPDATED | NO_CHANGES | STARTED (a rollout update not waited for: --no-wait)
    digest: str
    image_uri: str
    endpoint: Endpoint
    local: bool
    seconds: dict[str, float] = field(default_factory=dict)
    changes: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "stage": self.stage, "target": self.target, "stack": self.stack_name,
                "status": self.status, "digest": self.digest, "image": self.image_uri, "local": self.local,
                "url": self.endpoint.url, "auth_type": self.endpoint.auth_type, "region": self.endpoint.region,
                "ca": self.endpoint.ca_path, "outputs": self.endpoint.outputs,
                "invoker_policy": self.endpoint.invoker_policy, "changes": self.changes,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def validate(request: DeployRequest) -> tuple[ModelSpec, str, str]:
    """The spec (with the chosen target in force), the target and the stage, or the first reason not to deploy."""
    from mlfn.infra.checks import check_stage, resolve_target
    from mlfn.runtime.spec import load_spec

    if not request.model_dir.is_dir():
        raise CliError(f"{request.model_dir}: not a directory (expected a model folder with model.onnx)")
    spec = load_spec(request.model_dir)
    target = resolve_target(spec, request.target)
    stage = request.stage or spec.settings.stages[0]
    check_stage(spec, stage)
    return spec.with_target(target), target, stage


def deploy(request: DeployRequest, *, say: Say, on_event: Callable[[Any], None],
           step: Step | None = None) -> DeployOutcome:
    """`step` (fleet hook, mlfn.cli.fleet): runs each named step ("build", "probe", "push", "synth", "stack",
    "serve") as `step(name, fn, *args, **kwargs)`, so a fleet deploy can bound, batch and retry them."""
    from mlfn.infra.naming import stack_name as name_of_stack

    from .aws import cloudformation

    spec, target, stage = validate(request)
    _step = step or _run_step  # fleet hook
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    session, emulator = open_session(local=request.local, region=request.region, profile=request.profile,
                                     start=True, say=say)
    seconds["session"] = time.perf_counter() - clock
    base = _base(spec, request)  # before anything is built or pushed

    clock = time.perf_counter()
    built = _step("build", _build, spec, base, say)
    seconds["build"] = time.perf_counter() - clock

    from .health_probe import probe
    from .image_contents import unpack_model
    from .packaging.base import mlfn_home

    clock = time.perf_counter()
    contents_root = (emulator.state_dir if emulator else mlfn_home()) / "models"
    contents = unpack_model(built, contents_root)
    stack = name_of_stack(spec, stage)
    if not _already_serving(session, emulator, stack, contents):
        say(f"- health probe of {built.digest[:19]} (the image's model contents, a throwaway sandbox) ...")
        _step("probe", probe, contents, target)
        say("  healthy")
    seconds["probe"] = time.perf_counter() - clock

    clock = time.perf_counter()
    image_uri = _step("push", _push, built, spec, session, say)
    seconds["push"] = time.perf_counter() - clock

    clock = time.perf_counter()
    template = _step("synth", synthesized_template, spec, image_uri, stage, target, say)
    seconds["synth"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say(f"- deploying stack {stack} (change set) ...")
    # locally only a Lambda alias is picked up by the data plane by itself; an ECS service is registered after it
    wait = request.wait or not rolls_out(spec, target) or (emulator is not None and target != "lambda")
    result = _step("stack", cloudformation.deploy, template, stack, session=session, on_event=on_event,
                   on_note=say, description=f"mlfn deploy {spec.name} ({target}, {stage})",
                   tags={"mlfn:model": spec.name, "mlfn:stage": stage}, wait=wait)
    seconds["stack"] = time.perf_counter() - clock
    if result.status == "NO_CHANGES":
        say(f"  no changes: {stack} already runs {built.digest[:19]}")
    if result.status == "STARTED":
        say(f"  update started (--no-wait): CloudFormation and {'CodeDeploy' if target == 'lambda' else 'ECS'} "
            "finish it, this machine may close; "
            f"`mlfn status {spec.name}` follows it")

    endpoint = endpoint_for(session, stack, result.outputs, emulator)
    if emulator is not None and result.status != "STARTED":  # started: the data plane follows by itself
        clock = time.perf_counter()
        _step("serve", _serve_locally, emulator, endpoint, contents, stage, say, template, image_uri)
        endpoint = endpoint_for(session, stack, result.outputs, emulator)  # a port the data plane chose
        seconds["serve"] = time.perf_counter() - clock
    seconds["total"] = sum(seconds.values())
    return DeployOutcome(spec.name, stage, target, stack, result.status, built.digest, image_uri, endpoint,
                         emulator is not None, seconds, result.changes)


def rolls_out(spec: ModelSpec, target: str) -> bool:
    """A model whose stack updates last as long as its traffic shift (`[rollout]` canary or linear): Lambda's
    CodeDeploy deployment reports back to CloudFormation; an ECS CANARY/LINEAR deployment is part of the service
    update (CloudFormation counts its bake times against the 36-hour limit of a stack operation)."""
    return target in ("lambda", "ecs") and spec.settings.rollout.strategy in ("canary", "linear")


def _run_step(_name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One model alone: each step simply runs."""
    return fn(*args, **kwargs)


def _base(spec: ModelSpec, request: DeployRequest) -> Any:
    """The runtime base to build on. AWS cannot run a model-only image: without a base, only --local (whose
    sandboxes run the image's model layers on mlfn's local runtime) or an explicit `--base none` go ahead."""
    from .packaging import base as bases

    try:
        base = bases.resolve_base(bases.flavour_for(spec), request.base)
    except bases.BaseError as exc:
        raise CliError(str(exc)) from None
    if base.kind == "none" and not request.local and request.base != "none":
        raise CliError(f"no runtime base for the {base.flavour} flavour, so the image could not run on AWS: build "
                       f"one with `mlfn runtime build --flavour {base.flavour}` (and `mlfn runtime publish`), pass "
                       "--base, or try it with --local")
    return base


def _build(spec: ModelSpec, base: Any, say: Say) -> Any:
    from .packaging import base as bases
    from .packaging.layer import LayerError
    from .packaging.model_image import build_model_image
    from .packaging.oci import LayoutError

    try:
        if base.kind == "none":
            say(f"- building image: model layers only, no {base.flavour} runtime base (the local emulator runs "
                "them on mlfn's local runtime)")
        else:
            say(f"- building image on the {base.flavour} runtime base {base.source} ({base.kind})")
        built = build_model_image(spec, base, bases.images_home() / spec.name)
    except (bases.BaseError, LayerError, LayoutError) as exc:
        raise CliError(str(exc)) from None
    say(f"  image {built.digest}")
    return built


def _push(built: Any, spec: ModelSpec, session: Any, say: Say) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from .packaging import ecr
    from .packaging.source import PushError, PushSource

    repository = f"mlfn-{spec.name}"  # one path segment: moto's ECR keeps only the last one
    say(f"- pushing to ECR repository {repository}")
    try:
        source = PushSource.from_layout(built.layout.root, built.ref)
        report = ecr.push(source, session.client("ecr"), repository, "latest", lambda line: say(f"  {line.strip()}"))
    except PushError as exc:
        raise CliError(str(exc)) from None
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"ECR push to {repository} failed: {exc}") from None
    return str(report.reference)


def _infra_fingerprint() -> str:
    """What the synthesized template depends on besides its inputs: mlfn.infra's code and aws-cdk-lib's version."""
    from importlib import metadata, resources

    digest = hashlib.sha256()
    for path in sorted(resources.files("mlfn.infra").iterdir(), key=lambda p: p.name):
        if path.name.endswith((".py", ".json")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(metadata.version("aws-cdk-lib").encode())
    return digest.hexdigest()


def template_cache(spec: ModelSpec, image_uri: str, stage: str, target: str) -> Path:
    """Where the template for these inputs is kept once synthesized (a fleet deploy fills it in one CDK run)."""
    from .packaging.base import mlfn_home

    key = hashlib.sha256(json.dumps([image_uri, stage, target, _infra_fingerprint()]).encode()).hexdigest()[:32]
    return mlfn_home() / "synth" / f"{spec.name}-{stage}" / f"{key}.template.json"


def synthesized_template(spec: ModelSpec, image_uri: str, stage: str, target: str, say: Say) -> Path:
    """The stack's template, synthesized once per (image digest, stage, target, infra code): the digest covers every
    file of the model folder, so an unchanged folder reuses it and a no-op redeploy never starts jsii."""
    cached = template_cache(spec, image_uri, stage, target)
    folder = cached.parent
    if cached.is_file():
        say("- template: unchanged inputs, synthesized before")
        return cached
    from mlfn.infra.synth import synth_model

    say("- synthesizing the stack (CDK, cdk-nag) ...")
    started = time.perf_counter()
    outdir = folder / "cdk.out"
    template = synth_model(spec.directory, image_uri=image_uri, stage=stage, outdir=outdir, target=target)
    keep_template(cached, template)
    say(f"  synthesized in {time.perf_counter() - started:.1f}s")
    return cached


def keep_template(cached: Path, template: Path) -> None:
    """Store a synthesized template as the cache entry `cached`, replacing the stack's older ones."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob("*.template.json"):
        old.unlink()
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(template.read_text())
    tmp.replace(cached)


def _wait_until_served(emulator: Any, key: str, contents: Path, say: Say, timeout_s: float = 120) -> None:
    """Wait until the data plane serves `key` from `contents` (it reads the stack's function from the control plane)."""
    from .emulator import data_plane_client

    client = data_plane_client(emulator)
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.status()
        served = {t["key"]: t for t in status.get("targets", [])}
        if Path(served.get(key, {}).get("config", {}).get("model_dir", "")) == contents.resolve():
            say(f"- local data plane serves {key} from {contents.name[:12]}")
            say(f"  runs: {served[key].get('isolation') or 'host runtime'}")
            return
        problem = status.get("problems", {}).get(key)
        if time.monotonic() > deadline:
            raise CliError(f"the local data plane did not pick up {key} within {timeout_s:.0f}s"
                           + (f": {problem}" if problem else f" (see {emulator.state_dir}/data-plane.log)"))
        time.sleep(0.2)


def _already_serving(session: Any, emulator: Any, stack: str, contents: Path) -> bool:
    """Locally: the data plane already runs exactly these contents for this stack (a no-op redeploy)."""
    if emulator is None:
        return False
    from .aws.cloudformation import stack_outputs

    outputs = stack_outputs(session, stack)
    if not outputs:
        return False
    key = data_plane_key(outputs)
    entry = registration(emulator, key) if key else None
    return bool(entry and Path(entry.get("model_dir", "")) == contents.resolve())


def _ecs_front_ids(emulator: Any, stack_name: str, template: Path) -> dict[str, str]:
    """`front_metrics.stack_dimensions` of the stack in the emulator."""
    import boto3

    from .aws.session import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
    from .local.front_metrics import stack_dimensions

    cfn = boto3.client("cloudformation", endpoint_url=emulator.control_url, region_name=LOCAL_REGION,
                       aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY)
    return stack_dimensions(cfn, stack_name, json.loads(template.read_text()))


def _serve_locally(emulator: Any, endpoint: Endpoint, contents: Path, stage: str, say: Say, template: Path,
                   image_uri: str) -> None:
    """Have the emulator's data plane serve the pushed image (`contents`: its model folder, for the host runtime):
    a Lambda function it picks up from the control plane by itself (this waits for it); a SageMaker endpoint or ECS
    service is registered on the control plane's URL, a SageMaker one with its REST front as the template defines it.
    Says whether the image runs isolated or on the host runtime, and why."""
    from .emulator import data_plane_client
    from .local.rest_front import UnsupportedFront, front_of_template

    outputs = endpoint.outputs
    key = data_plane_key(outputs)
    target = outputs["Target"]
    if target == "lambda":  # the data plane follows the control plane by itself: wait until it runs the new image
        _wait_until_served(emulator, key, contents, say)
        return
    extra: dict[str, Any] = {}
    if target == "sagemaker":
        try:
            extra["front"] = front_of_template(json.loads(template.read_text()))
        except UnsupportedFront as exc:
            raise CliError(f"the local emulator cannot serve {key}'s API Gateway front: {exc}") from None
    else:  # the HTTP API's and load balancer's ids, which the metrics of the ECS front carry, and the cluster
        extra["metric_dimensions"] = _ecs_front_ids(emulator, endpoint.stack_name, template)
        extra["cluster"] = outputs.get("ClusterName", "")
    entry = registration(emulator, key)
    same_front = all(((entry or {}).get(k) or {}) == (extra.get(k) or {})
                     for k in ("front", "metric_dimensions", "cluster"))
    if (entry and Path(entry.get("model_dir", "")) == contents.resolve() and same_front
            and entry.get("image", "") == image_uri):
        return
    client = data_plane_client(emulator)
    name = {"lambda": "FunctionName", "sagemaker": "EndpointName", "ecs": "ServiceName"}[target]
    try:
        served = client.register_model(contents, name=outputs[name], stage=stage, url=endpoint.bind_url,
                                       target=target, image=image_uri, **extra)
    except ValueError as exc:
        raise CliError(f"the local data plane refused {key}: {exc}") from None
    say(f"- local data plane now serves {key} from {contents.name[:12]}")
    say(f"  runs: {served.get('isolation') or 'host runtime'}")
