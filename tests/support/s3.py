"""A real S3-compatible server for the store's object-store path: moto's server on a free local port.

delta-rs speaks HTTP to it as it would to S3 (no locking provider: moto's conditional puts suffice), and
reads its endpoint and credentials from the AWS_* environment, as a deployment would. The server answers
from a thread of the test's own process, so a delta-rs call that holds the GIL while it waits on I/O
(deltalake 1.6.6's `DeltaTable.history`) cannot be made from the test itself: run it in a subprocess,
e.g. through the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

BUCKET = "retain-lake"
REGION = "us-east-1"
#: distinctive, so a test can check it is never printed or written
SECRET = "retain-test-secret-7Qv2Lx9Wd4"


@dataclass(frozen=True)
class S3Bucket:
    """An empty bucket on the server, and how to reach it."""

    name: str
    endpoint: str
    secret: str

    def uri(self, prefix: str) -> str:
        return f"s3://{self.name}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`."""
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[S3Bucket]:
    """moto's S3 server with one bucket, and the environment delta-rs and boto3 read pointed at it, for the
    tests of a module (subprocesses inherit it)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", endpoint)
            env.setenv("AWS_ACCESS_KEY_ID", "retain-test")
            env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
            env.setenv("AWS_REGION", REGION)
            env.setenv("AWS_ALLOW_HTTP", "true")
            for other in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
                env.delenv(other, raising=False)
            boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=BUCKET)
            yield S3Bucket(BUCKET, endpoint, SECRET)
    finally:
        server.stop()
