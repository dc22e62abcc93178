"""`mlfn batch NAME_OR_DIR --input s3://... --output s3://...`: score every record of a dataset in S3 with a model.

Each input object's results go to `<name>.out` under the output prefix (one line per record, in order) and its
failed records to `<name>.err` (object, line, why). `--resume` does only what is missing; `--json` prints the
job's final summary. With `--local` the objects are in the emulator's S3. A deployed model whose stack has a batch
state machine (`[batch] state_machine`) runs ONE execution of it: a Distributed Map for a Lambda model, a SageMaker
Batch Transform job of the model's own image for a container model (SageMaker, ECS); the execution runs without this
process (`--no-wait` prints its ARN). Otherwise mlfn's own job scores the records here: through the deployed
endpoint (the data plane answers), or, for a model folder, the runtime in this process. The output says which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..console import CliError, result
from ._common import add_location

LOCAL_CONCURRENCY = 4  # calls in flight when [batch] concurrency is 0 (automatic)
BUCKET_OUTPUT = "BatchBucket"  # the one bucket a batch engine's roles reach ([batch] bucket)
BATCH_MODEL_OUTPUT = "BatchModelName"  # a container model's stack: the SageMaker model its transform jobs run
ENDED_HINTS = {  # what to do after an execution of the batch state machine that did not succeed
    "TIMED_OUT": "the execution ran longer than the state machine's TimeoutSeconds ([batch] timeout_s); raise it "
                 "in mlfn.toml and `mlfn deploy`, or split the input, then run again",
    "ABORTED": "the execution was stopped (StopExecution, or the local emulator restarted); run again",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("batch", help="score a dataset in S3 (JSON Lines, CSV, one object per record)")
    p.add_argument("model", metavar="NAME_OR_DIR", help="a deployed model's name, or a model folder")
    p.add_argument("--input", required=True, metavar="S3_URI", help="s3://BUCKET/PREFIX of the input objects")
    p.add_argument("--output", required=True, metavar="S3_URI", help="s3://BUCKET/PREFIX for .out and .err objects")
    p.add_argument("--resume", action="store_true", help="go on from where an interrupted run of this job stopped")
    p.add_argument("--records-per-call", type=int, metavar="N", help="records per call ([batch] records_per_call)")
    p.add_argument("--concurrency", type=int, metavar="N", help="calls in flight ([batch] concurrency)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-wait", action="store_true",
                   help="with a batch state machine: print the execution's ARN and return at once")
    add_location(p, local_help="use the local emulator's S3 (and its data plane for a deployed model)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..batch.job import Job, JobStopped
    from ..batch.locations import parse_s3

    source, target = parse_s3(args.input, "--input"), parse_s3(args.output, "--output")
    if source == target:
        raise CliError("--input and --output are the same location; give the results a prefix of their own")
    settings = job_settings(args)
    session, emulator = _session(args)
    machine, engine_target, bucket = _state_machine_of(args, session, emulator)
    if machine is not None:
        if engine_target != "lambda":
            return _run_transform_machine(args, session, machine, bucket, source, target)
        return _run_state_machine(args, session, machine, source, target)
    send, model, how, transform_model = _model(args, session, emulator)
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    if say:
        say(f"mlfn batch: {model} ({how}) over {source.uri} -> {target.uri}; engine: mlfn's own job in this "
            "process (no batch state machine deployed)")
    record = None
    if args.local:  # the emulator's SageMaker shows the job as a transform job (DescribeTransformJob)
        import time

        from ..batch.job import job_key
        from ..batch.transform_record import TransformRecord

        name = f"mlfn-batch-{job_key(source, target, model)}-{int(time.time())}"
        record = TransformRecord(session.client("sagemaker"), name, transform_model, source.uri, target.uri,
                                 settings, timeout_s=timeout_s(args))
    job = Job(session.client("s3"), source, target, send, settings, model=model, work_dir=_work_dir(),
              resume=args.resume, say=say, record=record)
    try:
        summary = job.run()
    except JobStopped as exc:
        if record is not None and record.timed_out:
            print(f"mlfn batch: timed out after [batch] timeout_s = {record.timeout_s:g} s (the batch state "
                  f"machine's TimeoutSeconds); {exc}", file=sys.stderr)
            return 1
        print(f"mlfn batch: {exc}", file=sys.stderr)
        return 130
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        result(summary, True)
    else:
        print(f"{summary['TransformJobStatus']}: {summary['Records']:,} records, {summary['FailedRecords']:,} failed, "
              f"{summary['RecordsPerSecond']:,.0f} records/s; results in {target.uri}")
    return 0 if summary["TransformJobStatus"] == "Completed" else 1


def job_settings(args: argparse.Namespace) -> Any:
    """`[batch]` of the model folder's mlfn.toml (defaults for a name), then the options."""
    from ..batch.job import JobSettings

    settings = JobSettings(concurrency=LOCAL_CONCURRENCY)
    folder = Path(args.model)
    if folder.is_dir():
        from mlfn.runtime.spec import load_spec

        batch = load_spec(folder).settings.batch
        settings = JobSettings(batch.records_per_call, batch.max_payload_mb, batch.concurrency or LOCAL_CONCURRENCY,
                               batch.max_failed_percent, batch.instance_type, batch.instance_count)
    for option, name in ((args.records_per_call, "records_per_call"), (args.concurrency, "concurrency")):
        if option is not None:
            if option < 1:
                raise CliError(f"--{name.replace('_', '-')} {option}: expected a whole number of at least 1")
            settings = JobSettings(**{**settings.__dict__, name: option})
    return settings


def timeout_s(args: argparse.Namespace) -> int:
    """`[batch] timeout_s` of the model folder's mlfn.toml (its default for a name)."""
    from mlfn.runtime.settings import BatchSettings

    folder = Path(args.model)
    if folder.is_dir():
        from mlfn.runtime.spec import load_spec

        return load_spec(folder).settings.batch.timeout_s
    return BatchSettings().timeout_s


def _session(args: argparse.Namespace) -> tuple[Any, Any]:
    """A boto3 session: AWS, or the emulator's (its control plane is started when it is not running)."""
    if not args.local:
        from ..endpoints import open_session

        return open_session(local=False, region=args.region, profile=args.profile)
    from .. import emulator
    from ..aws.session import local_session
    from ..local.control_plane import start_process

    info = emulator.running()
    if info is not None:
        return local_session(info.control_url), info
    if not args.quiet:
        print(f"mlfn batch: starting the local emulator's control plane (its S3) in {emulator.state_dir()}; "
              "`mlfn local stop` ends it", file=sys.stderr)
    try:
        url = start_process(emulator.state_dir())
    except RuntimeError as exc:
        raise CliError(f"the local emulator's control plane did not start: {exc}") from None
    return local_session(url), None


def _model(args: argparse.Namespace, session: Any, emulator: Any) -> tuple[Any, str, str, str]:
    """(send, model name, how it is reached, the SageMaker model a transform job runs): the deployed endpoint, or
    the runtime over a folder. The SageMaker model is the stack's `BatchModelName` (a container model's batch
    engine: its own image), else the model's name."""
    from ..batch import invokers
    from ..endpoints import lookup

    folder = Path(args.model)
    name = args.model
    if folder.is_dir():
        from mlfn.runtime.spec import load_spec

        name = load_spec(folder).name
    if not args.local or emulator is not None:
        try:
            endpoint = lookup(session, name, args.stage, emulator)
            return (invokers.over_http(endpoint, session), name, f"endpoint {endpoint.url}",
                    endpoint.outputs.get(BATCH_MODEL_OUTPUT) or name)
        except CliError:
            if not folder.is_dir():
                raise
    if not folder.is_dir():
        raise CliError(f"{args.model!r} is neither a model folder nor a model deployed to the local emulator")
    return invokers.in_process(folder), name, f"runtime in this process over {folder}", name


def _state_machine_of(args: argparse.Namespace, session: Any, emulator: Any) -> tuple[str | None, str, str | None]:
    """(the `BatchStateMachineArn` output of the deployed model's stack, its target, its `BatchBucket` output), or
    (None, "", None) when there is no such stack or output."""
    from ..batch.state_machine import OUTPUT
    from ..endpoints import lookup

    if args.local and emulator is None:
        return None, "", None
    folder = Path(args.model)
    name = args.model
    if folder.is_dir():
        from mlfn.runtime.spec import load_spec

        name = load_spec(folder).name
    try:
        endpoint = lookup(session, name, args.stage, emulator)
    except CliError:
        return None, "", None
    arn = endpoint.outputs.get(OUTPUT)
    return (arn, endpoint.target, endpoint.outputs.get(BUCKET_OUTPUT)) if arn else (None, "", None)


def _refuse_job_options(args: argparse.Namespace, arn: str) -> None:
    ignored = [flag for flag, value in (("--resume", args.resume), ("--records-per-call", args.records_per_call),
                                        ("--concurrency", args.concurrency)) if value]
    if ignored:
        raise CliError(f"{', '.join(ignored)}: the model's batch state machine ({arn}) has its batch size and "
                       "concurrency in its definition ([batch] in mlfn.toml, then `mlfn deploy`) and each execution "
                       "starts anew; run without these options")


def _run_transform_machine(args: argparse.Namespace, session: Any, arn: str, bucket: str | None, source: Any,
                           target: Any) -> int:
    """One execution of a container model's batch state machine (a SageMaker Batch Transform job of the model's
    own image), followed with its job's progress to its end (or not, with --no-wait)."""
    from ..batch import state_machine as machine

    _refuse_job_options(args, arn)
    try:
        machine.check_bucket(bucket, source, target)  # the job's role reaches [batch] bucket only
    except machine.StateMachineError as exc:
        raise CliError(str(exc)) from None
    sfn = session.client("stepfunctions")
    execution = machine.start(sfn, arn, machine.transform_input(source, target))
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    if say:
        say(f"mlfn batch: started {execution} of {arn} over {source.uri} -> {target.uri}; engine: SageMaker Batch "
            "Transform (the stack's state machine)")
    return _follow(args, execution, lambda: machine.follow_transform(
        sfn, session.client("sagemaker"), session.client("s3"), execution, source, target, say),
        lambda summary: f"{summary['status']}: transform job {summary['TransformJobName']} "
                        f"{summary.get('TransformJobStatus', 'not started')}; results under {target.uri}"
                        + (f" ({summary['error']}: {summary.get('FailureReason') or summary.get('cause', '')})"
                           if "error" in summary else ""))


def _follow(args: argparse.Namespace, execution: str, follow: Any, final_line: Any) -> int:
    """Print the ARN and return (--no-wait), or follow the execution to its end and print its summary (`--json`)
    or `final_line(summary)`, and what to do after an end that did not succeed."""
    if args.no_wait:
        result({"executionArn": execution}, args.json) if args.json else print(execution)
        return 0
    try:
        summary = follow()
    except KeyboardInterrupt:
        print(f"mlfn batch: stopped following; the execution goes on: {execution}", file=sys.stderr)
        return 130
    if args.json:
        result(summary, True)
    else:
        print(final_line(summary))
    hint = ENDED_HINTS.get(summary["status"])
    if hint:
        print(f"mlfn batch: {hint}", file=sys.stderr)
    return 0 if summary["status"] == "SUCCEEDED" else 1


def _run_state_machine(args: argparse.Namespace, session: Any, arn: str, source: Any, target: Any) -> int:
    """One execution of the model's batch state machine, followed to its end (or not, with --no-wait)."""
    from ..batch import state_machine as machine

    _refuse_job_options(args, arn)
    sfn = session.client("stepfunctions")
    try:
        document = machine.execution_input(session.client("s3"), sfn, arn, source, target)
    except machine.StateMachineError as exc:
        raise CliError(str(exc)) from None
    execution = machine.start(sfn, arn, document)
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    if say:
        say(f"mlfn batch: started {execution} of {arn} over s3://{source.bucket}/{document['key']}")

    def final_line(summary: dict[str, Any]) -> str:
        counts = summary.get("itemCounts", {})
        return (f"{summary['status']}: {counts.get('succeeded', 0):,} items succeeded, {counts.get('failed', 0):,} "
                f"failed; results under {target.uri}" + (f" ({summary['error']}: {summary.get('cause', '')})"
                                                         if "error" in summary else ""))
    return _follow(args, execution, lambda: machine.follow(sfn, execution, say), final_line)


def _work_dir() -> Path:
    import os

    return Path(os.environ.get("MLFN_HOME") or ".mlfn") / "batch"
