"""Credentials a self-hosted runner's host has but this container cannot reach, told apart from
"no credentials at all", each with its fix (docs/credentials.md, Self-hosted runners).

A Docker action runs in a container of its own on the runner's host. What the SDK finds on the
host is not all there: the instance metadata service answers the token PUT with a hop limit
(IMDSv2's `HttpPutResponseHopLimit`, 1 by default on many AMIs) that the container's extra hop
exhausts; a web-identity token file (IRSA) or a Pod Identity token file lives in the runner's pod,
not in the container; the Pod Identity agent's link-local address may not be routable from it.

AWS documents the hop limit (1 by default, "in a container environment, we recommend setting the
hop limit to 2"): https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
and https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceMetadataOptions.html
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from .errors import CredentialsError

IMDS = "http://169.254.169.254"
PROBE_TIMEOUT = 1.0  # the SDK's own metadata timeout
OIDC_FIX = (
    "or, simpler, let the action assume the role with GitHub's OIDC token: set `role-to-assume:` "
    "and add `permissions: { contents: read, id-token: write }` to the job (works from any "
    "runner that reaches GitHub and STS)."
)


def token_file_missing(env: Mapping[str, str]) -> CredentialsError | None:
    """A token file the SDK would read (IRSA's, Pod Identity's) that this container cannot see.
    Checked before the SDK's chain, which would fail on it with a bare FileNotFoundError."""
    for name, what in (
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "the web-identity token file (IRSA)"),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "the Pod Identity token file"),
    ):
        path = env.get(name, "").strip()
        if path and not os.path.isfile(path):
            return CredentialsError(
                name,
                f"names {what} {path!r}, which this container cannot see: a Docker action "
                "gets the step's environment but not the runner's files outside the workspace.",
                "in an earlier step, copy the token into the workspace and point this step's "
                f"{name} at the copy (under /github/workspace), {OIDC_FIX}",
            )
    return None


def endpoint_unreachable(env: Mapping[str, str], error: str) -> CredentialsError | None:
    """The container-credentials endpoint (EKS Pod Identity, ECS) named but not reached."""
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        uri = env.get(name, "").strip()
        if uri:
            host = urllib.parse.urlsplit(uri).hostname or "169.254.170.2"
            return CredentialsError(
                name,
                f"the container-credentials endpoint at {host} (EKS Pod Identity or ECS) gave "
                f"no credentials to this container ({error}).",
                "a Docker action runs in a container of its own, where the Pod Identity agent's "
                f"{host} may not be routable; run the job where it is (a container job on the "
                "runner pod's network) or pass credentials from an earlier step, " + OIDC_FIX,
            )
    return None


def imds_hop_limit(env: Mapping[str, str]) -> CredentialsError | None:
    """An EC2 instance whose metadata service answers this container's GET but never its token
    PUT: IMDSv2's response hop limit stops the PUT's answer one hop short. Asked only when the
    SDK found no credentials, not on GitHub's hosted runners, never through a proxy."""
    if env.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("RUNNER_ENVIRONMENT", "") == "github-hosted":
        return None
    base = (env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "").strip() or IMDS).rstrip("/")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    put = urllib.request.Request(  # noqa: S310 - http(s) by construction
        f"{base}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    if _answers(opener, put):
        return None
    if not _answers(opener, urllib.request.Request(f"{base}/latest/meta-data/")):  # noqa: S310
        return None  # no metadata service here at all
    return CredentialsError(
        "credentials",
        "this EC2 instance's metadata service answers, but its IMDSv2 token request from this "
        "container got no answer: the instance's HttpPutResponseHopLimit is 1, and a Docker "
        "action is one network hop further away.",
        "raise the hop limit to 2: `aws ec2 modify-instance-metadata-options --instance-id "
        "INSTANCE_ID --http-put-response-hop-limit 2 --http-endpoint enabled` (or "
        "`HttpPutResponseHopLimit: 2` in the launch template), " + OIDC_FIX,
    )


def _answers(opener: urllib.request.OpenerDirector, request: urllib.request.Request) -> bool:
    """Whether the endpoint answered at all (any HTTP status) within PROBE_TIMEOUT."""
    if urllib.parse.urlsplit(request.full_url).scheme not in ("http", "https"):
        return False
    try:
        with opener.open(request, timeout=PROBE_TIMEOUT):
            return True
    except urllib.error.HTTPError as exc:
        exc.close()
        return True
    except (OSError, ValueError):  # a timeout is an OSError
        return False
