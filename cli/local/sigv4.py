"""Verify AWS Signature Version 4 on requests to AWS_IAM Function URLs and SageMaker endpoints of the emulator.

moto accepts any credentials, so the emulator keeps its own small credential store: by default the access key
`mlfn-local` with secret `mlfn-local-secret` (account 123456789012); `DataPlane(credentials=...)` adds others.
Checks, in AWS's order: an Authorization header (or presigned query), the algorithm, a known access key, the credential
scope (date = request date, region, service, `aws4_request`), `host` among the signed headers, a timestamp within
5 minutes (a presigned URL with `X-Amz-Expires`: from its `X-Amz-Date` until that many seconds later, 1..604800), the
payload hash, then the signature itself. The payload hash is SHA-256 of the body (of the empty string for no body), for
presigned URLs too: `UNSIGNED-PAYLOAD` is S3's convention and counts only where the request declares it
(`x-amz-content-sha256` header or `X-Amz-Content-Sha256` query parameter).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from .payload_v2 import Caller

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_ACCESS_KEY = LOCAL_ACCESS_KEY
DEFAULT_SECRET_KEY = LOCAL_SECRET_KEY
MAX_SKEW = dt.timedelta(minutes=5)
MAX_EXPIRES = 604800  # seconds (7 days): X-Amz-Expires is 1..604800
UNSIGNED = "UNSIGNED-PAYLOAD"
_AUTH = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)\s*$")


class SignatureError(Exception):
    """Why a request was refused (the client only sees 403 {"Message": "Forbidden"}, plus an x-mlfn-error hint)."""


@dataclass(frozen=True)
class Credential:
    secret_key: str
    account_id: str = "123456789012"
    user_name: str = "mlfn-local"
    signing_key: bytes = b""  # instead of the secret: the key derived for the request's date, region and service


def default_credentials() -> dict[str, Credential]:
    return {DEFAULT_ACCESS_KEY: Credential(DEFAULT_SECRET_KEY)}


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    return _hmac(_hmac(_hmac(key, region), service), "aws4_request")


def _canonical_query(raw_query: str, drop: str | None = None) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        key, value = unquote(key), unquote(value)
        if key != drop:
            pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _headers_multi(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(" ".join(value.strip().split()))
    return out


def _expires(value: str) -> int:
    """X-Amz-Expires: whole seconds from 1 to 604800 (7 days)."""
    if not value.isdigit() or not 1 <= int(value) <= MAX_EXPIRES:
        raise SignatureError(f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_EXPIRES}, got {value!r}")
    return int(value)


def _check_time(when: dt.datetime, expires: int | None, now: dt.datetime) -> None:
    """A signature is good within 5 minutes of its timestamp; a presigned URL's until X-Amz-Expires runs out."""
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    if expires is None:
        if abs(now - when) > MAX_SKEW:
            raise SignatureError(f"signature expired: {stamp} is more than 5 minutes from the emulator's clock")
    elif now > when + dt.timedelta(seconds=expires):
        raise SignatureError(f"the presigned URL expired: X-Amz-Date {stamp} + X-Amz-Expires {expires} s is before "
                             f"the emulator's clock ({now.strftime('%Y%m%dT%H%M%SZ')})")
    elif when - now > MAX_SKEW:
        raise SignatureError(f"signature not yet valid: {stamp} is more than 5 minutes ahead of the emulator's clock")


def verify(*, method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]], body: bytes,
           region: str, service: str | tuple[str, ...], credentials: Mapping[str, Credential],
           now: dt.datetime | None = None) -> Caller:
    """Return the caller of a correctly signed request, or raise `SignatureError`.

    `service` may name several signing services the target answers to (a SageMaker endpoint: the runtime's
    `sagemaker`, and `execute-api` for the API Gateway front mlfn deploys in front of it).
    """
    services = (service,) if isinstance(service, str) else service
    multi = _headers_multi(headers)
    auth = multi.get("authorization", [""])[0]
    query = dict(p.partition("=")[::2] for p in raw_query.split("&") if p) if raw_query else {}
    if auth:
        match = _AUTH.match(auth)
        if not match:
            raise SignatureError("the Authorization header is not an AWS4-HMAC-SHA256 signature")
        credential, signed, signature = match.groups()
        amz_date = (multi.get("x-amz-date") or multi.get("date") or [""])[0]
        canonical_query = _canonical_query(raw_query)
        expires = None
    elif "X-Amz-Signature" in query:
        if unquote(query.get("X-Amz-Algorithm", "")) != ALGORITHM:
            raise SignatureError("X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        credential, signed = unquote(query.get("X-Amz-Credential", "")), unquote(query.get("X-Amz-SignedHeaders", ""))
        signature, amz_date = query["X-Amz-Signature"], unquote(query.get("X-Amz-Date", ""))
        canonical_query = _canonical_query(raw_query, drop="X-Amz-Signature")
        expires = _expires(unquote(query["X-Amz-Expires"])) if "X-Amz-Expires" in query else None
    else:
        raise SignatureError("the request is not signed (no Authorization header): sign it with SigV4")
    parts = credential.split("/")
    if len(parts) != 5:
        raise SignatureError("the credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request")
    access_key, date, scope_region, scope_service, terminator = parts
    known = credentials.get(access_key)
    if known is None:
        raise SignatureError(f"unknown access key {access_key!r} (the emulator's is {DEFAULT_ACCESS_KEY!r})")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError("x-amz-date must be a timestamp like 20260101T000000Z") from None
    if date != amz_date[:8] or scope_region != region or scope_service not in services or terminator != "aws4_request":
        wanted = f"{amz_date[:8]}/{region}/{'|'.join(services)}/aws4_request"
        raise SignatureError(f"the credential scope must be {wanted}, "
                             f"got {date}/{scope_region}/{scope_service}/{terminator}")
    _check_time(when, expires, now or dt.datetime.now(dt.UTC))
    signed_names = signed.split(";")
    if "host" not in signed_names:
        raise SignatureError("the host header must be signed")
    missing = [n for n in signed_names if n not in multi]
    if missing:
        raise SignatureError(f"signed headers missing from the request: {', '.join(missing)}")
    actual_hash = hashlib.sha256(body).hexdigest()
    declared = multi.get("x-amz-content-sha256", [""])[0] or unquote(query.get("X-Amz-Content-Sha256", ""))
    if declared and declared != UNSIGNED and declared != actual_hash:
        raise SignatureError("x-amz-content-sha256 does not match the body")
    payload_hash = declared or actual_hash
    canonical_headers = "".join(f"{n}:{','.join(multi[n])}\n" for n in signed_names)
    scope = f"{date}/{region}/{scope_service}/aws4_request"
    key = known.signing_key or signing_key(known.secret_key, date, region, scope_service)
    # AWS's canonical URI encodes the path as sent once more (`:` -> %3A, `%20` -> %2520). curl's --aws-sigv4
    # (7.x) signs the path exactly as sent; that form is accepted too, and is the same for plain paths.
    paths = dict.fromkeys([quote(raw_path or "/", safe="/~"), raw_path or "/"])
    for path in paths:
        canonical = "\n".join([method, path, canonical_query, canonical_headers, signed, payload_hash])
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        if hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
            break
    else:
        raise SignatureError("the signature does not match (wrong secret key, or the request changed after signing)")
    arn = f"arn:aws:iam::{known.account_id}:user/{known.user_name}"
    return Caller(access_key=access_key, account_id=known.account_id, user_arn=arn, user_id=access_key)
