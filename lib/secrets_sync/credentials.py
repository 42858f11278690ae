"""AWS credentials and clients. Nothing below this module knows which path made the session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import boto3
from botocore.config import Config

from .errors import CredentialsError
from .runner import Runner
from .settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Adaptive mode: a client-side rate limiter that backs off when AWS throttles, so a burst of
# writes settles at the account's quota instead of failing. Attempts are set explicitly because
# botocore's defaults have changed between releases.
RETRY_MODE: Literal["adaptive"] = "adaptive"
MAX_ATTEMPTS = 8
USER_AGENT = "secrets-sync"


def session(settings: Settings, env: Mapping[str, str], runner: Runner) -> boto3.Session:
    """A boto3 session for the run: ambient credentials from the standard chain."""
    key_id = env.get("AWS_ACCESS_KEY_ID") or None
    secret_key = env.get("AWS_SECRET_ACCESS_KEY") or None
    token = env.get("AWS_SESSION_TOKEN") or None
    if key_id and secret_key:
        runner.add_masks(s for s in (secret_key, token) if s)
        return boto3.Session(
            aws_access_key_id=key_id,
            aws_secret_access_key=secret_key,
            aws_session_token=token,
            region_name=settings.region,
        )
    ambient = boto3.Session(region_name=settings.region)
    if ambient.get_credentials() is None:
        raise CredentialsError(
            "credentials",
            "no AWS credentials were found.",
            "set `role-to-assume:` and grant `id-token: write` to the job, or configure "
            "credentials in an earlier step.",
        )
    return ambient


def client_config(settings: Settings) -> Config:
    return Config(
        region_name=settings.region,
        retries={"mode": RETRY_MODE, "total_max_attempts": MAX_ATTEMPTS},
        max_pool_connections=max(10, settings.max_concurrency * 2),
        connect_timeout=min(5.0, settings.timeout_seconds),
        read_timeout=settings.timeout_seconds,
        user_agent_extra=USER_AGENT,
    )


def secretsmanager(sess: boto3.Session, settings: Settings) -> SecretsManagerClient:
    return sess.client(
        "secretsmanager",
        config=client_config(settings),
        endpoint_url=settings.endpoints.get("secretsmanager"),
    )
