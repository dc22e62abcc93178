"""mlfn.cli.aws.session: a missing region, credentials or profile is one clear line, before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfn.cli.aws.session import aws_session, local_session
from mlfn.cli.console import CliError


@pytest.fixture()
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS configuration at all: no env credentials, empty config files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("")
    credentials.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    return tmp_path


def test_missing_region_is_one_line(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(CliError) as failure:
        aws_session()
    message = str(failure.value)
    assert message.startswith("no AWS region") and "--region" in message and "\n" not in message


def test_missing_credentials_is_one_line(bare_env: Path) -> None:
    with pytest.raises(CliError) as failure:
        aws_session(region="eu-west-1")
    message = str(failure.value)
    assert message.startswith("no AWS credentials") and "aws configure" in message and "\n" not in message


def test_unknown_profile_names_it(bare_env: Path) -> None:
    with pytest.raises(CliError) as failure:
        aws_session(region="eu-west-1", profile="nope")
    assert "'nope' not found" in str(failure.value)


def test_profile_gives_region_and_credentials(bare_env: Path) -> None:
    (bare_env / "config").write_text("[profile ml]\nregion = eu-central-1\n")
    (bare_env / "credentials").write_text("[ml]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n")
    session = aws_session(profile="ml")
    assert session.region_name == "eu-central-1"
    assert session.get_credentials().access_key == "AKIAEXAMPLE"


def test_explicit_region_wins(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert aws_session(region="ap-south-1").region_name == "ap-south-1"


def test_local_session_needs_the_emulator_address(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CliError, match="mlfn local start"):
        local_session()
    session = local_session("http://127.0.0.1:1")
    assert session.region_name == "us-east-1"
    assert session.get_credentials().access_key == "mlfn-local"
    import os

    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # local_session set it for the process; undo for the next tests
