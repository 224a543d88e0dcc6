"""AWS for tests: moto's server mode on loopback, and the environment that points boto3 at it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support.servers import free_port


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_url,
    }.items():
        monkeypatch.setenv(name, value)
    return moto_url


def remote_table(kind: str, name: str, text: str) -> str:
    """Put TEXT in bucket NAME (key routes.yaml) or in parameter /NAME/routes."""
    if kind == "s3":
        boto3.client("s3").create_bucket(Bucket=name)
        boto3.client("s3").put_object(Bucket=name, Key="routes.yaml", Body=text)
        return f"s3://{name}/routes.yaml"
    boto3.client("ssm").put_parameter(Name=f"/{name}/routes", Value=text, Type="String")
    return f"ssm:/{name}/routes"


def remote_text(spec: str) -> str:
    if spec.startswith("s3://"):
        bucket, _, key = spec.removeprefix("s3://").partition("/")
        return str(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    parameter = boto3.client("ssm").get_parameter(Name=spec.removeprefix("ssm:"))["Parameter"]
    return str(parameter["Value"])
