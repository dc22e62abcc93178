"""A boto3 session with its region and credentials checked first, so a deploy fails in one clear line before it
creates anything.

Resolution is boto3's own (the --profile/--region flags, then AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION,
~/.aws/config and ~/.aws/credentials, instance and container roles); boto3 also honours AWS_ENDPOINT_URL, which is
how every command reaches the local emulator. `local_session()` is the emulator's: region us-east-1 and the
emulator's access key, no AWS account needed.
"""

from __future__ import annotations

import os
from typing import Any

from ..console import CliError

LOCAL_REGION = "us-east-1"
LOCAL_ACCESS_KEY = "mlfn-local"  # what the local gateway's SigV4 check expects (mlfn.cli.local.sigv4)
LOCAL_SECRET_KEY = "mlfn-local-secret"


def aws_session(region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 Session with a region and credentials, or CliError saying which is missing and how to give it."""
    import boto3
    import botocore.exceptions

    try:
        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what the AWS CLI v2 and the SDKs also honour
        region = region or os.environ.get("AWS_REGION")
        session = boto3.Session(profile_name=profile or None, region_name=region or None)
        share_loader(session)
    except botocore.exceptions.ProfileNotFound:
        raise CliError(
            f"AWS profile {profile or os.environ.get('AWS_PROFILE')!r} not found in ~/.aws/config or "
            "~/.aws/credentials (run `aws configure --profile NAME`, or drop --profile)"
        ) from None
    if not session.region_name:
        raise CliError(
            "no AWS region: pass --region (e.g. --region us-east-1), set AWS_REGION, or set `region` in your "
            "AWS profile; to try mlfn without AWS use --local"
        )
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise CliError(f"cannot load AWS credentials: {exc}") from None
    if credentials is None:
        raise CliError(
            "no AWS credentials found: run `aws configure` (or `aws sso login`), set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or pass --profile; to try mlfn without AWS use --local"
        )
    return session


def local_session(endpoint_url: str | None = None) -> Any:
    """A session for the local emulator: its region and access key, no AWS account needed.

    `endpoint_url` (the control plane's `http://127.0.0.1:PORT`) is put in AWS_ENDPOINT_URL for this process, so
    every boto3 client goes to the emulator; without it AWS_ENDPOINT_URL must be set already.
    """
    import boto3

    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    elif not os.environ.get("AWS_ENDPOINT_URL"):
        raise CliError("the local emulator's address is unknown: start it with `mlfn local start`")
    return share_loader(boto3.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY, region_name=LOCAL_REGION
    ))


_LOADER: Any = None


def share_loader(session: Any) -> Any:
    """Give `session` the process's one botocore data loader, so service models are read and parsed once per
    process, not once per session: a fleet deploy opens a session per model (0.3 s of CPU each, 0.04 s shared)."""
    global _LOADER
    if _LOADER is None:
        import botocore.loaders

        _LOADER = botocore.loaders.create_loader()
    session._session.register_component("data_loader", _LOADER)
    return session


def account_id(session: Any) -> str:
    """The account the session's credentials belong to (one STS call)."""
    import botocore.exceptions

    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except botocore.exceptions.NoCredentialsError:
        raise CliError("no AWS credentials found: run `aws configure` or set AWS_ACCESS_KEY_ID") from None
    except botocore.exceptions.ClientError as exc:
        raise CliError(f"AWS refused the credentials: {exc.response['Error'].get('Message', exc)}") from None
