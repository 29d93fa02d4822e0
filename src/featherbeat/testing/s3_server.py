"""A real S3 HTTP server on loopback for tests: moto's ``ThreadedMotoServer`` on a free
127.0.0.1 port, reached by boto3 through ``AWS_ENDPOINT_URL`` with dummy credentials (no
network beyond loopback, no config files from ``~/.aws``). Shared by test_scale_s3.py and the
blob contract (test_blob_contract.py); tests skip when boto3 or moto is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featherbeat.testing.redis_server import free_port


def aws_env(endpoint: str, home: Path) -> dict[str, str]:
    """Dummy credentials for the loopback server; no instance metadata, no ~/.aws files."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "featherbeat-test",
        "AWS_SECRET_ACCESS_KEY": "featherbeat-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
    }


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server for the module (each test uses its own bucket)."""
    port = free_port()
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = aws_env(s3_endpoint, tmp_path)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    boto3 = pytest.importorskip("boto3")
    name = f"fb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def keys_in(bucket: str) -> list[str]:
    import boto3

    listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))
