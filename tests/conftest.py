"""Fixtures: moto in server mode on a loopback port, a recording proxy in front of it that answers
as real AWS does where moto is kinder, and the action run as a subprocess against them."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.action import ActionRun, Started, run_action, start_action
from tests.support.proxy import AwsProxy, Faults
from tests.support.realaws import RealAws, moto_server

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto per session, which under `make test`'s parallel workers is one per worker, held
    to AWS's rules (tests/support/realaws/)."""
    with moto_server() as url:
        yield url


@pytest.fixture
def moto(moto_url: str) -> str:
    """A clean moto for each test."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
        pass
    return moto_url


@pytest.fixture(params=["kept", "dropped"])
def label_reading(request: pytest.FixtureRequest, moto: str) -> Iterator[str]:
    """Each reading of what AWS does to the other labels of the version AWSCURRENT leaves
    (tests/support/realaws/moto_patches.py, OLD_VERSION_LABELS): a test that uses this runs under
    both. Drift, rollback and prune must hold under either."""
    from tests.support.realaws import moto_patches

    with moto_patches.reading(request.param):
        yield request.param


@pytest.fixture
def realaws(moto: str) -> RealAws:
    """What AWS does where moto is kinder (tests/support/realaws/), for the proxy to model."""
    return RealAws(moto, REGION)


@pytest.fixture
def proxy(moto: str, realaws: RealAws) -> Iterator[AwsProxy]:
    with AwsProxy(moto, Faults(), model=realaws) as p:
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
        return run_action(**self._args(inputs, env), **kwargs)

    def start(
        self, inputs: Mapping[str, str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Started:
        """Start the entrypoint and return without waiting: `.proc` to signal, `.finish()`."""
        return start_action(**self._args(inputs, env), **kwargs)

    def _args(self, inputs: Mapping[str, str], env: Mapping[str, str] | None) -> dict[str, Any]:
        self.count += 1
        workspace = self.tmp_path / f"run{self.count}" / "workspace"
        full_inputs = {"aws-region": REGION, **inputs}
        return {
            "inputs": full_inputs,
            "endpoint": self.proxy.url,
            "workspace": workspace,
            "env": env,
        }


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
