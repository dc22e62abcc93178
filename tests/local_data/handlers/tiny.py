"""Tiny Lambda handlers that prove the emulator's semantics without a model (run by the real awslambdaric)."""

import json
import os
import sys
import time

STARTED = time.time()  # module import = the init phase
INIT_PID = os.getpid()


def _body(event):
    body = event.get("body") or "{}"
    return json.loads(body) if isinstance(body, str) and body.startswith("{") else {}


def echo(event, context):
    """Return the event and some context, as an HTTP response."""
    info = {"event": event, "pid": os.getpid(), "request_id": context.aws_request_id,
            "function_arn": context.invoked_function_arn, "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_LAMBDA", "MLFN", "_HANDLER", "LAMBDA"))}}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(info)}


def plain(event, context):
    """A result without statusCode: the Function URL answers 200 application/json with it as the body."""
    return {"answer": 42}


def sleep(event, context):
    """Sleep the number of seconds in the body's `seconds`, then answer with the pid."""
    time.sleep(float(_body(event).get("seconds", 0)))
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid()})}


def crash(event, context):
    """End the runtime process mid-invocation."""
    os._exit(3)


def fail(event, context):
    """An unhandled exception: a function error."""
    raise ValueError("this handler always fails")


def big(event, context):
    """A response over Lambda's 6 MB limit."""
    return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}


def hog(event, context):
    """Allocate and touch the number of megabytes in the body's `mb`."""
    block = bytearray(int(_body(event).get("mb", 10)) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return {"statusCode": 200, "body": json.dumps({"allocated": len(block)})}


def binary(event, context):
    """Echo a binary body back as base64."""
    return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
            "body": event.get("body", ""), "isBase64Encoded": event.get("isBase64Encoded", False),
            "cookies": ["a=1; Path=/", "b=2"]}


def work(event, context):
    """Sleep `seconds`, crash if `crash`, else answer with this sandbox's pid (one handler for mixed bursts)."""
    body = _body(event)
    time.sleep(float(body.get("seconds", 0)))
    if body.get("crash"):
        os._exit(3)
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid()})}


def greeting(event, context):
    """A plain string result: the Function URL answers its JSON text."""
    return "Hello, world!"


def direct(event, context):
    """For the Invoke API: print `say`, sleep `seconds`, raise if `fail`, else answer with the event."""
    if event.get("say"):
        print(event["say"], flush=True)
    time.sleep(float(event.get("seconds", 0)))
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("exit"):
        sys.exit(0)
    return {"got": event}
