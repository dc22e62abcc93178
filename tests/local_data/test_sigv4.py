"""SigV4 on AWS_IAM Function URLs: botocore-signed requests pass, all others get 403 {"Message": "Forbidden"}."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlfn.cli.local.sigv4 import SignatureError, default_credentials, verify


def signed(url: str, body: bytes = b"", *, secret: str = "mlfn-local-secret", key: str = "mlfn-local",
           region: str = "us-east-1", service: str = "lambda", headers: dict[str, str] | None = None,
           unsigned_payload: bool = False) -> AWSRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json",
                                                                     **(headers or {})})
    if unsigned_payload:
        request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return request


def presigned(url: str, *, expires: int = 3600, signed_at: dt.datetime | None = None, method: str = "GET") -> str:
    """A URL presigned by botocore's SigV4QueryAuth (service lambda, the emulator's credentials), optionally as if
    signed at `signed_at` (botocore's clock is set back for the signer call only)."""
    request = AWSRequest(method=method, url=url)
    signer = SigV4QueryAuth(Credentials("mlfn-local", "mlfn-local-secret"), "lambda", "us-east-1", expires=expires)
    if signed_at is None:
        signer.add_auth(request)
    else:
        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda remove_tzinfo=True: signed_at.replace(tzinfo=None)
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.get_current_datetime = real
    return request.url


def check(request: AWSRequest, **overrides):
    split = request.url.split("?", 1)
    path = "/" + split[0].split("/", 3)[3] if split[0].count("/") >= 3 else "/"
    args = dict(method=request.method, raw_path=path, raw_query=split[1] if len(split) > 1 else "",
                headers=[("host", split[0].split("/")[2]), *request.headers.items()], body=request.body or b"",
                region="us-east-1", service="lambda", credentials=default_credentials())
    args.update(overrides)
    return verify(**args)


URL = "https://127.0.0.1:8443/v1/models/iris:predict?b=2&a=1"


def test_botocore_signature_verifies_and_names_the_caller():
    caller = check(signed(URL, b'{"x": 1}'))
    assert caller.access_key == "mlfn-local" and caller.account_id == "123456789012"
    assert check(signed(URL, b"abc", unsigned_payload=True)).access_key == "mlfn-local"


@pytest.mark.parametrize(("request_args", "overrides", "reason"), [
    ({"secret": "wrong"}, {}, "signature does not match"),
    ({"key": "someone-else"}, {}, "unknown access key"),
    ({"region": "eu-west-1"}, {}, "credential scope"),
    ({"service": "s3"}, {}, "credential scope"),
    ({}, {"body": b'{"x": 2}'}, "x-amz-content-sha256|signature does not match"),
    ({}, {"method": "PUT"}, "signature does not match"),
    ({}, {"raw_path": "/other"}, "signature does not match"),
    ({}, {"now": dt.timedelta(minutes=20)}, "expired"),  # checked 20 minutes after signing
])
def test_tampered_or_foreign_signatures_are_refused(request_args, overrides, reason):
    request = signed(URL, b'{"x": 1}', **request_args)
    if isinstance(overrides.get("now"), dt.timedelta):  # relative to the signing, not to test collection
        overrides = {**overrides, "now": dt.datetime.now(dt.UTC) + overrides["now"]}
    with pytest.raises(SignatureError, match=reason):
        check(request, **overrides)


def test_botocore_presigned_url_verifies():
    """SigV4QueryAuth hashes the (empty) payload as every non-S3 service does: no UNSIGNED-PAYLOAD."""
    caller = check(AWSRequest(method="GET", url=presigned(URL)))
    assert caller.access_key == "mlfn-local"


def test_presigned_url_lives_for_x_amz_expires_seconds():
    signed_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    long_lived = AWSRequest(method="GET", url=presigned(URL, expires=3600, signed_at=signed_at))
    assert check(long_lived).access_key == "mlfn-local"  # 10 minutes old, valid for an hour
    short = AWSRequest(method="GET", url=presigned(URL, expires=1, signed_at=signed_at + dt.timedelta(minutes=8)))
    with pytest.raises(SignatureError, match="presigned URL expired"):
        check(short)  # 2 minutes old, valid for 1 second


@pytest.mark.parametrize("expires", ["0", "604801", "abc", "-5"])
def test_x_amz_expires_out_of_bounds_is_refused(expires):
    # the bounds are checked before the signature, so the signed value can be swapped
    url = presigned(URL, expires=60).replace("X-Amz-Expires=60&", f"X-Amz-Expires={expires}&")
    with pytest.raises(SignatureError, match="X-Amz-Expires must be a whole number of seconds from 1 to 604800"):
        check(AWSRequest(method="GET", url=url))


def test_unsigned_request_is_refused():
    with pytest.raises(SignatureError, match="not signed"):
        verify(method="GET", raw_path="/", raw_query="", headers=[("host", "x")], body=b"", region="us-east-1",
               service="lambda", credentials=default_credentials())


def test_gateway_enforces_sigv4(tiny, client):
    ep = tiny("tiny.echo", auth_type="AWS_IAM")
    url = ep.url + "v1/models/iris:predict?q=a%20b"
    unsigned = client.post(url, content=b"{}")
    assert unsigned.status_code == 403 and unsigned.json() == {"Message": "Forbidden"}
    assert "not signed" in unsigned.headers["x-mlfn-error"]
    wrong = signed(url, b"{}", secret="not-the-secret")
    assert client.post(url, content=b"{}", headers=dict(wrong.headers)).status_code == 403
    good = signed(url, b"{}")
    reply = client.post(url, content=b"{}", headers=dict(good.headers))
    assert reply.status_code == 200
    iam = reply.json()["event"]["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == "mlfn-local" and iam["accountId"] == "123456789012"
    assert reply.json()["event"]["requestContext"]["accountId"] == "123456789012"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_aws_sigv4_and_the_local_ca(tiny, plane):
    ep = tiny("tiny.plain", auth_type="AWS_IAM")
    base = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(plane.ca_path),
            ep.url + "v1/models/iris:predict", "-H", "content-type: application/json", "-d", '{"instances": [[1]]}']
    sigv4 = ["--aws-sigv4", "aws:amz:us-east-1:lambda", "--user"]
    signed = subprocess.run([*base, *sigv4, "mlfn-local:mlfn-local-secret"], capture_output=True, text=True, timeout=30)
    assert signed.stdout == "200", signed.stderr
    wrong = subprocess.run([*base, *sigv4, "mlfn-local:nope"], capture_output=True, text=True, timeout=30)
    assert wrong.stdout == "403"


def test_gateway_accepts_a_botocore_presigned_url_and_refuses_it_once_expired(tiny, client):
    ep = tiny("tiny.echo", auth_type="AWS_IAM")
    url = ep.url + "v1/models/iris?q=a%20b"
    reply = client.get(presigned(url))
    assert reply.status_code == 200, reply.headers.get("x-mlfn-error")
    assert reply.json()["event"]["requestContext"]["authorizer"]["iam"]["accessKey"] == "mlfn-local"
    old = presigned(url, expires=1, signed_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120))
    expired = client.get(old)
    assert expired.status_code == 403 and expired.json() == {"Message": "Forbidden"}
    assert "presigned URL expired" in expired.headers["x-mlfn-error"]
