"""A canary rollout in the emulator under steady load: time from the first bad answer to rollback, requests that
reached the new version, requests lost (must be 0).

    .venv/bin/python -m bench.rollout_canary [--scale 0.01] [--rate 150] [--percent 20] [--good]
    nice .venv/bin/python -m bench.rollout_canary --through-deploy [--scale 0.05] [--percent 30] [--interval 5]

`--through-deploy` measures the user's path instead: `mlfn deploy --local` of iris with a canary `[rollout]`, then
of a bad version under signed HTTPS load on the Function URL (`bench/deploy_canary.py`).

What runs: the emulator's control plane (moto + mlfn's extensions, on 127.0.0.1) with its alarm evaluator and
CodeDeploy (`cli/local/codedeploy.py`) at `--scale` wall seconds per AWS second; a function with two published
versions of the iris model (v1 as bundled; v2 with a hook that fails a third of inputs, or with `--good` a changed
example only), each served by mlfn's real Lambda handler in this process; a load of `--rate` requests/s that picks
the version of every call by the `live` alias's weights as GetAlias (boto3) reports them (the version the gateway's
weighted routing would pick; this branch drives the handlers directly), sends the Lambda service metrics and the
handler's EMF lines to the emulator's CloudWatch (`cli/local/metrics_sink.py`); a CodeDeploy deployment
(CreateDeployment, boto3) with a canary config and a 5xx-count alarm that rolls back.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "functions" / "iris"
BAD_HOOK = '''"""Fails on a third of inputs (those whose first feature, in hundredths, leaves 1 modulo 3)."""
import json


def preprocess(body, content_type):
    rows = json.loads(body)["instances"]
    if round(rows[0][0] * 100) % 3 == 1:
        raise RuntimeError("bad version: this input fails")
    return None
'''
SLOW_HOOK = '''"""Answers, but 60 ms late: past a 25 ms p99 latency alarm."""
import time


def preprocess(body, content_type):
    time.sleep(0.06)
    return None
'''
ROLLBACK_EVENTS = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]
DONE = ("Succeeded", "Stopped", "Failed")


def model_versions(folder: Path, *, bad: bool, hook: str = BAD_HOOK) -> tuple[Path, Path]:
    """Two model folders: v1 = the bundled iris; v2 = iris with a bad `hook` or, when not bad, a changed example."""
    v1, v2 = folder / "v1", folder / "v2"
    for target in (v1, v2):
        shutil.copytree(IRIS, target)
    if bad:
        (v2 / "hooks.py").write_text(hook)
        (v2 / "mlfn.toml").write_text('name = "iris"\nhooks = "hooks.py"\n')
    else:
        (v2 / "example.json").write_text(json.dumps({"instances": [[6.0, 3.0, 4.8, 1.8]]}))
    return v1, v2


def handler_for(model_dir: Path, sink: Any) -> Any:
    """mlfn's Lambda handler for a model folder, its EMF lines going to the metrics sink (not stdout)."""
    from mlfn.runtime.lambda_adapter import build

    handler = build(model_dir)
    handler.metrics._write = sink.record_log_line  # the data plane reads a sandbox's stdout the same way
    return handler


def http_event(body: dict[str, Any], path: str = "/v1/models/iris:predict") -> dict[str, Any]:
    return {"version": "2.0", "rawPath": path, "rawQueryString": "", "isBase64Encoded": False,
            "headers": {"content-type": "application/json"}, "body": json.dumps(body),
            "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "127.0.0.1"}}}


def example_check(handlers: dict[str, Any], dirs: dict[str, Path]) -> Any:
    """The pre-traffic check: the version's example.json answered 2xx (what the stack's hook function does)."""
    def check(function: str, version: str, hook: str = "") -> bool:
        example = json.loads((dirs[version] / "example.json").read_text())
        answer = handlers[version](http_event(example), SimpleNamespace(aws_request_id="pre-traffic",
                                                                         function_version=version))
        return 200 <= int(answer["statusCode"]) < 300
    return check


@dataclass
class Function:
    name: str
    v1: str
    v2: str
    role: str


def create_function(lam: Any, iam: Any, name: str) -> Function:
    """A function with two published versions and the alias `live` on the first."""
    import io
    import zipfile

    def code(text: str) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("index.py", text)
        return buf.getvalue()

    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"]
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler",
                        Code={"ZipFile": code("# v1\n")})
    v1 = lam.publish_version(FunctionName=name, Description="v1")["Version"]
    lam.update_function_code(FunctionName=name, ZipFile=code("# v2\n"))
    v2 = lam.publish_version(FunctionName=name, Description="v2")["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v1)
    return Function(name, v1, v2, role)


def errors_alarm(cw: Any, name: str, threshold: int) -> None:
    """The stack's 5xx-count rollout alarm: mlfn/ServerErrors (EMF) Sum >= threshold in one minute."""
    cw.put_metric_alarm(AlarmName=name, Namespace="mlfn", MetricName="ServerErrors",
                        Dimensions=[{"Name": "Model", "Value": "iris"}], Statistic="Sum", Period=60,
                        EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=threshold,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")


def rate_alarm(cw: Any, name: str, percent: float) -> None:
    """The stack's default 5xx-rate rollout alarm, a metric-math alarm as infra/rollout.py synthesizes it:
    `100 * errors / requests` (mlfn/ServerErrors and mlfn/Requests Sum per minute) > percent."""
    def stat(metric: str) -> dict[str, Any]:
        return {"Metric": {"Namespace": "mlfn", "MetricName": metric,
                           "Dimensions": [{"Name": "Model", "Value": "iris"}]}, "Period": 60, "Stat": "Sum"}
    cw.put_metric_alarm(AlarmName=name, EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=percent,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                        Metrics=[{"Id": "expr_1", "Expression": "100 * errors / requests", "ReturnData": True},
                                 {"Id": "errors", "MetricStat": stat("ServerErrors"), "ReturnData": False},
                                 {"Id": "requests", "MetricStat": stat("Requests"), "ReturnData": False}])


def latency_alarm(cw: Any, name: str, function: str, threshold_ms: float) -> None:
    """The stack's p99 rollout alarm on the alias (AWS/Lambda Duration)."""
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/Lambda", MetricName="Duration",
                        Dimensions=[{"Name": "FunctionName", "Value": function},
                                    {"Name": "Resource", "Value": f"{function}:live"}],
                        ExtendedStatistic="p99", Period=60, EvaluationPeriods=1, Threshold=threshold_ms,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")


def start_deployment(cd: Any, fn: Function, routing: dict[str, Any], alarms: list[str], *,
                     hook: str = "") -> str:
    """Application, custom config, deployment group with alarms and auto-rollback, and the deployment (boto3)."""
    app, config = f"mlfn-{fn.name}", f"mlfn-{fn.name}-{uuid.uuid4().hex[:6]}"
    cd.create_application(applicationName=app, computePlatform="Lambda")
    cd.create_deployment_config(deploymentConfigName=config, computePlatform="Lambda", trafficRoutingConfig=routing)
    cd.create_deployment_group(
        applicationName=app, deploymentGroupName="live", serviceRoleArn=fn.role, deploymentConfigName=config,
        alarmConfiguration={"enabled": True, "alarms": [{"name": a} for a in alarms]},
        autoRollbackConfiguration={"enabled": True, "events": ROLLBACK_EVENTS},
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"})
    appspec = {"version": 0.0, "Resources": [{fn.name: {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": fn.name, "Alias": "live", "CurrentVersion": fn.v1, "TargetVersion": fn.v2}}}],
        "Hooks": [{"BeforeAllowTraffic": hook}] if hook else []}
    revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}}
    return str(cd.create_deployment(applicationName=app, deploymentGroupName="live", revision=revision)["deploymentId"])


@dataclass
class Call:
    at: float
    version: str
    status: int


@dataclass
class Load:
    """Steady load through the alias: each call's version picked by the alias's weights (GetAlias, refreshed every
    `refresh_s`), served by that version's handler, metered into the sink."""

    lam: Any
    fn: Function
    handlers: dict[str, Any]
    sink: Any
    rate: float = 150.0
    refresh_s: float = 0.02
    seed: int = 7
    calls: list[Call] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, max_calls: int, deadline_s: float) -> None:
        from mlfn.cli.local.alias_weights import pick_version
        from mlfn.cli.local.metrics_sink import Invocation

        rng = random.Random(self.seed)
        end = time.monotonic() + deadline_s
        alias, fetched = None, 0.0
        for i in range(max_calls):
            if self.stop.is_set() or time.monotonic() > end:
                return
            now = time.monotonic()
            if alias is None or now - fetched > self.refresh_s:
                alias, fetched = self.lam.get_alias(FunctionName=self.fn.name, Name="live"), now
            version = pick_version(alias, rng.random())
            row = [round(rng.uniform(4.3, 7.9), 2), round(rng.uniform(2.0, 4.4), 2),
                   round(rng.uniform(1.0, 6.9), 2), round(rng.uniform(0.1, 2.5), 2)]
            started = time.perf_counter()
            answer = self.handlers[version](http_event({"instances": [row]}),
                                            SimpleNamespace(aws_request_id=f"r{i}", function_version=version))
            ms = (time.perf_counter() - started) * 1000
            self.sink.record_invocation(Invocation(self.fn.name, version, ms, qualifier="live"))
            self.calls.append(Call(time.time(), version, int(answer["statusCode"])))
            time.sleep(max(0.0, now + 1 / self.rate - time.monotonic()))


def wait_done(cd: Any, deployment_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        info: dict[str, Any] = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        if info["status"] in DONE or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def figures(calls: list[Call], fn: Function, rollback_at: float | None) -> dict[str, Any]:
    """What the note reports for one run."""
    new = [c for c in calls if c.version == fn.v2]
    bad = [c for c in new if c.status >= 500]
    old_failed = [c for c in calls if c.version == fn.v1 and c.status >= 400]
    first_bad = bad[0].at if bad else None
    return {
        "requests": len(calls), "to_new_version": len(new), "new_version_5xx": len(bad),
        "to_new_version_before_rollback": len([c for c in new if rollback_at is None or c.at <= rollback_at]),
        "first_bad_to_rollback_s": (round(rollback_at - first_bad, 3) if rollback_at and first_bad else None),
        "lost": len(old_failed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollout_canary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="wall seconds per AWS second (default 0.01)")
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second (default 150)")
    parser.add_argument("--percent", type=int, default=20, help="canary percentage (default 20)")
    parser.add_argument("--interval", type=int, default=5, help="canary interval in minutes (default 5)")
    parser.add_argument("--good", action="store_true", help="deploy a good version instead of a bad one")
    parser.add_argument("--seed", type=int, default=7, help="seed of the load's inputs and version draws")
    parser.add_argument("--through-deploy", action="store_true",
                        help="run the canary through `mlfn deploy --local` and its Function URL")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.through_deploy:
        from bench.deploy_canary import measure

        print(json.dumps(measure(scale=args.scale, percent=args.percent, interval=args.interval,
                                 bad_hook=BAD_HOOK), indent=2))
        return 0
    from mlfn.cli.local import codedeploy
    from mlfn.cli.local.control_plane import ControlPlane, client_environment
    from mlfn.cli.local.metrics_sink import MetricsSink

    with tempfile.TemporaryDirectory() as tmp, ControlPlane(state_dir=tmp, alarm_time_scale=args.scale) as plane:
        env = client_environment(plane.url)
        kwargs = {"endpoint_url": plane.url, "region_name": env["AWS_REGION"],
                  "aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
        lam, iam, cw, cd = (boto3.client(s, **kwargs) for s in ("lambda", "iam", "cloudwatch", "codedeploy"))
        codedeploy.install()
        codedeploy.SETTINGS.endpoint_url, codedeploy.SETTINGS.time_scale = plane.url, args.scale
        sink = MetricsSink(cw).start()
        fn = create_function(lam, iam, f"bench-{uuid.uuid4().hex[:6]}")
        v1_dir, v2_dir = model_versions(Path(tmp), bad=not args.good)
        handlers = {fn.v1: handler_for(v1_dir, sink), fn.v2: handler_for(v2_dir, sink)}
        codedeploy.SETTINGS.pre_traffic = example_check(handlers, {fn.v1: v1_dir, fn.v2: v2_dir})
        errors_alarm(cw, f"{fn.name}-5xx", 2)
        load = Load(lam, fn, handlers, sink, rate=args.rate, seed=args.seed)
        worker = threading.Thread(target=load.run, args=(100_000, 120), daemon=True)
        worker.start()
        time.sleep(60 * args.scale)  # a minute of steady load on v1 first
        routing = {"type": "TimeBasedCanary",
                   "timeBasedCanary": {"canaryPercentage": args.percent, "canaryInterval": args.interval}}
        deployment = start_deployment(cd, fn, routing, [f"{fn.name}-5xx"], hook="pre-traffic")
        info = wait_done(cd, deployment, 60 * args.scale * (args.interval + 5) + 30)
        time.sleep(60 * args.scale)  # a minute more after the end
        load.stop.set()
        worker.join(timeout=30)
        sink.stop()
        run = codedeploy.RUNS[deployment]
        rollback_at = next((t for t, w in run.weights[1:] if w == 0.0), None)
        result = {"status": info["status"], "error": info.get("errorInformation", {}).get("message", ""),
                  "scale": args.scale, "rate": args.rate, "canary_percent": args.percent, "seed": args.seed,
                  **figures(load.calls, fn, rollback_at)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
