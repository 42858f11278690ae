"""Unit tests of the OIDC token client, claim decoding, trust-policy text and fork detection.

The token client is tested against the local token service over a real socket, with its retry
pauses recorded instead of slept so that these stay fast."""

from __future__ import annotations

import base64
import io
import json
import random
import urllib.parse

import pytest

from secrets_sync.credential_errors import fork_pull_request, web_identity_refused
from secrets_sync.credentials import sts_endpoint
from secrets_sync.errors import CredentialsError
from secrets_sync.oidc import (
    Claims,
    Retry,
    available,
    decode_claims,
    fetch_token,
    token_url,
    trust_condition,
)
from secrets_sync.runner import Runner
from secrets_sync.settings import load_settings
from tests.support.oidc import OidcServer, github_claims, make_jwt

REPO = "lornu-ai/app"


def actions_runner() -> tuple[Runner, io.StringIO]:
    stream = io.StringIO()
    return Runner(stream, in_actions=True), stream


# The token URL ----------------------------------------------------------------------------


def test_token_url_appends_to_the_runners_query():
    url = "https://pipelines.example/abc/idtoken?api-version=2.0"
    assert token_url(url, "sts.amazonaws.com") == url + "&audience=sts.amazonaws.com"


def test_token_url_starts_a_query_when_there_is_none():
    assert token_url("http://127.0.0.1:1/idtoken", "a") == "http://127.0.0.1:1/idtoken?audience=a"


def test_token_url_encodes_the_audience():
    url = token_url("http://h/t?api-version=2.0", "https://example.com/aud x&y=z")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query == {"api-version": ["2.0"], "audience": ["https://example.com/aud x&y=z"]}
    assert "audience=https%3A%2F%2Fexample.com%2Faud%20x%26y%3Dz" in url


def test_available_needs_both_variables():
    both = {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://h/t", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "b"}
    assert available(both)
    assert not available({"ACTIONS_ID_TOKEN_REQUEST_URL": "http://h/t"})
    assert not available({"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "b"})
    assert not available({**both, "ACTIONS_ID_TOKEN_REQUEST_URL": " "})


# Claims -----------------------------------------------------------------------------------


def test_decode_claims_reads_githubs_claims():
    jwt = make_jwt(github_claims("sts.amazonaws.com", repository=REPO), b"k")
    claims = decode_claims(jwt)
    assert claims == Claims(
        sub=f"repo:{REPO}:ref:refs/heads/main",
        aud="sts.amazonaws.com",
        repository=REPO,
        ref="refs/heads/main",
        job_workflow_ref=f"{REPO}/.github/workflows/sync.yml@refs/heads/main",
        iss="https://token.actions.githubusercontent.com",
        repository_owner_id="1234567",
        repository_id="7654321",
    )
    assert claims.describe() == (
        f"sub='repo:{REPO}:ref:refs/heads/main', aud='sts.amazonaws.com', "
        f"repository='{REPO}', ref='refs/heads/main', "
        f"job_workflow_ref='{REPO}/.github/workflows/sync.yml@refs/heads/main'"
    )


def test_decode_claims_of_an_immutable_subject_with_ids_as_numbers():
    claims = github_claims("sts.amazonaws.com", immutable=True, owner_id="31", repository_id="42")
    claims.update(repository_owner_id=31, repository_id=42)  # a number is read as its digits
    decoded = decode_claims(make_jwt(claims, b"k"))
    assert decoded.sub == "repo:lornu-ai@31/app@42:ref:refs/heads/main"
    assert (decoded.repository_owner_id, decoded.repository_id) == ("31", "42")
    assert decode_claims(make_jwt({"repository_id": True}, b"k")).repository_id is None


def test_decode_claims_of_an_environment_token():
    jwt = make_jwt(github_claims("sts.amazonaws.com", environment="production"), b"k")
    claims = decode_claims(jwt)
    assert claims.sub == f"repo:{REPO}:environment:production"
    assert claims.environment == "production"


def test_decode_claims_needs_no_padding_and_no_signature_check():
    payload = base64.urlsafe_b64encode(b'{"sub":"repo:o/r:ref:refs/heads/x","aud":["a","b"]}')
    jwt = "e30." + payload.decode().rstrip("=") + ".not-a-signature"
    claims = decode_claims(jwt)
    assert claims.sub == "repo:o/r:ref:refs/heads/x"
    assert claims.aud == "a,b"


@pytest.mark.parametrize(
    "jwt",
    [
        "",
        "opaque-token",
        "a.b",
        "a.!!!.c",
        "e30." + base64.urlsafe_b64encode(b"not json").decode() + ".s",
        "e30." + base64.urlsafe_b64encode(b"[1, 2]").decode() + ".s",
        "e30." + base64.urlsafe_b64encode(b'{"sub": 5, "aud": [1]}').decode() + ".s",
    ],
)
def test_unreadable_claims_are_empty_not_an_error(jwt):
    claims = decode_claims(jwt)
    assert claims == Claims()
    assert claims.describe() == "its claims could not be read"


def test_provider_of_the_default_and_an_enterprise_issuer():
    assert Claims().provider == "token.actions.githubusercontent.com"
    enterprise = Claims(iss="https://token.actions.githubusercontent.com/lornu/")
    assert enterprise.provider == "token.actions.githubusercontent.com/lornu"


# Trust-policy text -----------------------------------------------------------------------


def test_trust_condition_pins_the_tokens_sub_and_the_audience():
    claims = Claims(sub=f"repo:{REPO}:ref:refs/heads/main", aud="other", repository=REPO)
    text = trust_condition(claims, "sts.amazonaws.com")
    assert "\n" not in text
    assert json.loads(text) == {
        "Condition": {
            "StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": f"repo:{REPO}:ref:refs/heads/main",
            }
        }
    }


def test_trust_condition_for_an_environment_and_an_enterprise_issuer():
    claims = Claims(
        sub=f"repo:{REPO}:environment:production",
        iss="https://token.actions.githubusercontent.com/lornu",
    )
    condition = json.loads(trust_condition(claims, "sts.amazonaws.com"))["Condition"]
    assert condition["StringEquals"] == {
        "token.actions.githubusercontent.com/lornu:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com/lornu:sub": f"repo:{REPO}:environment:production",
    }


def test_trust_condition_without_a_sub_matches_the_repository():
    condition = json.loads(trust_condition(Claims(repository=REPO), "aud"))["Condition"]
    assert condition == {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "aud"},
        "StringLike": {"token.actions.githubusercontent.com:sub": f"repo:{REPO}:*"},
    }


# Backoff -------------------------------------------------------------------------------------


def test_backoff_is_jittered_growing_and_capped():
    retry = Retry(attempts=6, base=0.5, cap=2.0)
    rng = random.Random(1)
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 2.0, 2.0]):
        delays = {retry.delay(attempt, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


# The token client against the local token service ------------------------------------------

FAST = Retry(attempts=3, base=0.01, cap=0.02)


@pytest.fixture
def service():
    with OidcServer(repository=REPO, hang_seconds=5) as server:
        yield server


def fetch(service, audience="sts.amazonaws.com", env=None, **kwargs):
    runner, stream = actions_runner()
    pauses: list[float] = []
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 2.0)
    try:
        token = fetch_token(env or service.env(), audience, runner, sleep=pauses.append, **kwargs)
    except CredentialsError as exc:
        return exc, stream.getvalue(), pauses
    return token, stream.getvalue(), pauses


def test_fetch_returns_the_token_masked_at_birth(service):
    token, log, pauses = fetch(service)
    assert token.value == service.issued[0]
    assert token.claims.sub == f"repo:{REPO}:ref:refs/heads/main"
    assert token.claims.aud == "sts.amazonaws.com"
    assert service.audiences == ["sts.amazonaws.com"]
    assert service.requests[0].authorized
    # Only mask lines were written: the bearer, then the token.
    assert log.splitlines() == [
        f"::add-mask::{service.request_token}",
        f"::add-mask::{token.value}",
    ]
    assert token.value not in repr(token)
    assert pauses == []


def test_fetch_sends_the_audience_url_encoded(service):
    token, _, _ = fetch(service, audience="https://example.com/aud x&y")
    assert service.audiences == ["https://example.com/aud x&y"]
    assert token.claims.aud == "https://example.com/aud x&y"


def test_fetch_retries_5xx_then_succeeds(service):
    service.queue("5xx", "5xx")
    token, _, pauses = fetch(service)
    assert token.value == service.issued[0]
    assert [r.status for r in service.requests] == [503, 503, 200]
    assert len(pauses) == 2


def test_fetch_gives_up_after_its_attempts_on_5xx(service):
    service.mode = "5xx"
    exc, log, pauses = fetch(service)
    assert isinstance(exc, CredentialsError)
    assert [r.status for r in service.requests] == [503, 503, 503]
    assert len(pauses) == 2
    assert "failed 3 times (last answer: HTTP 503)" in exc.message
    assert "githubstatus.com" in exc.message
    assert service.request_token not in exc.message + log.split("\n", 1)[1]


def test_fetch_times_out_on_a_hang_and_retries(service):
    service.mode = "hang"
    exc, _, pauses = fetch(service, timeout=0.3, retry=Retry(attempts=2, base=0.01, cap=0.01))
    assert isinstance(exc, CredentialsError)
    assert [r.status for r in service.requests] == [0, 0]
    assert "no answer within 0.3 s" in exc.message
    assert len(pauses) == 1


def test_fetch_hang_then_answer(service):
    service.queue("hang")
    token, _, _ = fetch(service, timeout=0.3)
    assert token.value == service.issued[0]
    assert len(service.requests) == 2


def test_fetch_does_not_retry_a_refused_bearer(service):
    env = {**service.env(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong-bearer-value"}
    exc, _, pauses = fetch(service, env=env)
    assert isinstance(exc, CredentialsError)
    assert [(r.authorized, r.status) for r in service.requests] == [(False, 401)]
    assert pauses == []
    assert "refused the request (HTTP 401)" in exc.message
    assert "id-token: write" in exc.message
    assert "wrong-bearer-value" not in exc.message


def test_fetch_does_not_retry_a_4xx(service):
    # The runner's URL without its api-version: the service answers 400.
    env = {**service.env(), "ACTIONS_ID_TOKEN_REQUEST_URL": service.url.split("?")[0]}
    exc, _, pauses = fetch(service, env=env)
    assert isinstance(exc, CredentialsError)
    assert [r.status for r in service.requests] == [400]
    assert pauses == []
    assert "answered HTTP 400 for audience 'sts.amazonaws.com'" in exc.message


def test_fetch_without_a_token_in_the_answer(service):
    service.mode = "empty"
    exc, _, _ = fetch(service)
    assert isinstance(exc, CredentialsError)
    assert "answered without a token" in exc.message
    assert len(service.requests) == 1


def test_fetch_connection_refused_is_retried_then_reported():
    with OidcServer() as gone:
        env = gone.env()
    runner, _ = actions_runner()
    pauses: list[float] = []
    with pytest.raises(CredentialsError) as info:
        fetch_token(env, "sts.amazonaws.com", runner, retry=FAST, sleep=pauses.append)
    assert "failed 3 times (last: ConnectionRefusedError)" in info.value.message
    assert "127.0.0.1" in info.value.message
    assert len(pauses) == 2


def test_fetch_rejects_a_url_that_is_not_http():
    runner, _ = actions_runner()
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "file:///etc/passwd",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "b",
    }
    with pytest.raises(CredentialsError, match="is not an http"):
        fetch_token(env, "sts.amazonaws.com", runner)


# Fork detection and the STS endpoint ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        ("push", None, False),
        ("workflow_dispatch", None, False),
        (
            "pull_request",
            {"pull_request": {"head": {"repo": {"fork": True, "full_name": "x/app"}}}},
            True,
        ),
        (
            "pull_request",
            {"pull_request": {"head": {"repo": {"fork": False, "full_name": "x/app"}}}},
            True,
        ),
        (
            "pull_request",
            {"pull_request": {"head": {"repo": {"fork": False, "full_name": REPO}}}},
            False,
        ),
        ("pull_request", {"pull_request": {"head": {"repo": None}}}, True),
        ("pull_request_review", {"pull_request": {"head": {"repo": {"fork": True}}}}, True),
        ("pull_request", {"unexpected": 1}, None),
        ("pull_request", "not json", None),
        ("pull_request", "missing", None),
        # pull_request_target runs in the base repository and may get a token: not a fork case.
        ("pull_request_target", {"pull_request": {"head": {"repo": {"fork": True}}}}, False),
    ],
)
def test_fork_pull_request(tmp_path, event, payload, expected):
    env = {"GITHUB_EVENT_NAME": event, "GITHUB_REPOSITORY": REPO}
    if payload is not None:
        path = tmp_path / "event.json"
        if payload != "missing":
            path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        env["GITHUB_EVENT_PATH"] = str(path)
    assert fork_pull_request(env) is expected


def settings_for(region, **env):
    base = {"INPUT_SECRETS": "a: A", "GITHUB_REPOSITORY": REPO, "INPUT_AWS-REGION": region}
    return load_settings({**base, **env})


# The regional STS endpoints of each partition, as AWS documents them (and botocore's endpoint
# rule set resolves them): a URL built by hand from "amazonaws.com" is wrong outside aws/aws-cn.
STS_ENDPOINTS = {
    "us-east-1": "https://sts.us-east-1.amazonaws.com",
    "eu-west-1": "https://sts.eu-west-1.amazonaws.com",
    "cn-north-1": "https://sts.cn-north-1.amazonaws.com.cn",
    "us-gov-west-1": "https://sts.us-gov-west-1.amazonaws.com",
    "us-iso-east-1": "https://sts.us-iso-east-1.c2s.ic.gov",
    "us-isob-east-1": "https://sts.us-isob-east-1.sc2s.sgov.gov",
    "eu-isoe-west-1": "https://sts.eu-isoe-west-1.cloud.adc-e.uk",
}


@pytest.mark.parametrize(("region", "url"), STS_ENDPOINTS.items())
def test_sts_endpoint_is_regional_in_every_partition(region, url, monkeypatch):
    # Even where the environment asks botocore for the legacy global endpoint.
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    assert sts_endpoint(settings_for(region)) == url


def test_sts_endpoint_honours_the_endpoint_variables():
    settings = settings_for("us-east-1", AWS_ENDPOINT_URL_STS="http://127.0.0.1:9")
    assert sts_endpoint(settings) == "http://127.0.0.1:9"


# A refusal: which `sub` form, and the command that admits it --------------------------------

ROLE = "arn:aws:iam::123456789012:role/ci/github-secrets-sync"


def refused(claims: dict, **env: str) -> str:
    settings = settings_for("us-east-1", **{"INPUT_ROLE-TO-ASSUME": ROLE, **env})
    error = web_identity_refused(
        settings, decode_claims(make_jwt(claims, b"k")), "AccessDenied", "Not authorized"
    )
    assert isinstance(error, CredentialsError)
    assert "\n" not in error.message
    return error.message


def test_an_immutable_sub_refused_names_the_legacy_policy_first_and_the_command():
    claims = github_claims("sts.amazonaws.com", immutable=True, owner_id="31", repository_id="42")
    message = refused(claims)
    problem, fix = message.split(" Fix: ")
    sub = "repo:lornu-ai@31/app@42:ref:refs/heads/main"
    assert f"Its sub '{sub}' is in GitHub's immutable form" in problem
    assert fix.startswith(
        "the first suspect is a trust policy written for the other form (the legacy form "
        "repo:OWNER/REPO:...), which this sub cannot match"
    )
    assert (
        "`secrets-sync iam-policy --only trust --repository lornu-ai/app --owner-id 31 "
        "--repository-id 42 --account-id 123456789012 --branch main > trust.json`"
    ) in fix
    assert "--role-name github-secrets-sync --policy-document file://trust.json" in fix
    assert fix.index("first suspect") < fix.index("Otherwise")


def test_a_legacy_sub_refused_names_the_immutable_policy_first_with_the_claims_ids():
    claims = github_claims("sts.amazonaws.com", environment="prod env")
    message = refused(claims, **{"INPUT_AUDIENCE": "sts.example"})
    assert "is in GitHub's legacy form, names only, without IDs" in message
    assert "the immutable form repo:OWNER@OWNER_ID/REPO@REPO_ID:..." in message
    # The IDs come from the token's repository_owner_id / repository_id claims.
    assert "--owner-id 1234567 --repository-id 7654321" in message
    assert "--environment 'prod env' --audience sts.example > trust.json" in message


def test_a_refusal_speaks_of_the_issuer_the_token_names():
    ghes = "https://ghes.example/_services/token"
    message = refused(github_claims("sts.amazonaws.com", issuer=ghes))
    assert "arn:aws:iam::123456789012:oidc-provider/ghes.example/_services/token" in message
    # GitHub Enterprise Server keeps the legacy form: the command pins it alone, for its issuer.
    assert (
        "Fix: the first suspect is a trust policy written for another provider or form than this "
        "GitHub Enterprise Server's (the provider ghes.example/_services/token, the legacy form "
        "alone): print one that admits this sub with `secrets-sync iam-policy"
    ) in message
    assert f"--legacy-subject --account-id 123456789012 --branch main --issuer {ghes} " in message
    assert '"ghes.example/_services/token:sub": "repo:lornu-ai/app:ref:refs/heads/main"' in message
    assert "token.actions.githubusercontent.com" not in message


def test_a_refusal_without_ids_in_the_token_uses_the_subs_or_falls_back_to_legacy():
    claims = github_claims("sts.amazonaws.com", immutable=True, owner_id="5", repository_id="6")
    del claims["repository_owner_id"], claims["repository_id"]
    assert "--owner-id 5 --repository-id 6" in refused(claims)
    legacy = github_claims("sts.amazonaws.com")
    del legacy["repository_owner_id"]
    assert "--legacy-subject --account-id" in refused(legacy)


def test_a_refusal_of_a_pull_request_or_customised_sub():
    pull = {**github_claims("sts.amazonaws.com"), "sub": f"repo:{REPO}:pull_request"}
    message = refused(pull)
    assert "names neither a branch nor an environment" in message
    custom = {**github_claims("sts.amazonaws.com"), "sub": "repo:lornu-ai/app"}
    message = refused(custom)
    assert "in neither of GitHub's default forms (a customised subject claim)" in message
    assert "iam-policy" not in message
    assert "its claims could not be read" in refused({"aud": 5})
