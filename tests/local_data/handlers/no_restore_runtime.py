"""A custom runtime that ignores SnapStart: it never calls /restore/next, it only polls /invocation/next."""

import http.client
import json
import os

address = os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    connection = http.client.HTTPConnection(address)
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    response = connection.getresponse()
    response.read()
    request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
    body = json.dumps({"pid": os.getpid(), "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]})
    connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body)
    connection.getresponse().read()
