"""Fixtures: moto in server mode on a loopback port, a recording proxy in front of it, and the
action run as a subprocess against them."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support import aws_rules
from tests.support.action import ActionRun, run_action
from tests.support.proxy import AwsProxy, Faults

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    aws_rules.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto(moto_url: str) -> str:
    """A clean moto for each test."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
        pass
    return moto_url


@pytest.fixture
def proxy(moto: str) -> Iterator[AwsProxy]:
    with AwsProxy(moto, Faults()) as p:
        yield p


@pytest.fixture
def sm(moto: str) -> Any:
    """A client straight to moto (not through the proxy), to arrange and inspect state."""
    return boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Action:
    """Runs the entrypoint against the proxy, in a fresh workspace each time."""

    def __init__(self, proxy: AwsProxy, tmp_path: Path) -> None:
        self.proxy = proxy
        self.tmp_path = tmp_path
        self.count = 0

    def __call__(
        self, inputs: Mapping[str, str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> ActionRun:
        self.count += 1
        full_inputs = {"aws-region": REGION, **inputs}
        workspace = self.tmp_path / f"run{self.count}" / "workspace"
        return run_action(
            full_inputs, endpoint=self.proxy.url, workspace=workspace, env=env, **kwargs
        )


@pytest.fixture
def action(proxy: AwsProxy, tmp_path: Path) -> Action:
    return Action(proxy, tmp_path)


@pytest.fixture
def oidc() -> Iterator[Any]:
    """A local GitHub OIDC token service; `oidc.env()` gives the two ACTIONS_ID_TOKEN_* vars."""
    from tests.support.action import REPOSITORY
    from tests.support.oidc import OidcServer

    with OidcServer(repository=REPOSITORY) as server:
        yield server
