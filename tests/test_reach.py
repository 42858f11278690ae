"""The way to AWS from where users run (issue 21, points 4 to 6), end to end over real sockets: a
CA made in the test and TLS on the token service and on AWS (the recording proxy in front of
moto), a forward proxy, and a self-hosted runner's credentials the container cannot reach (a
metadata service behind a hop limit of 1, a token file not mounted, an unreachable endpoint)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.action import assert_run_clean
from tests.support.forward import ForwardProxy, HopLimitedMetadata
from tests.support.tls import Handshakes, TestCA, serve_tls

ROLE = "arn:aws:iam::123456789012:role/github-secrets-sync"
MAPPING = "app/key: APP_KEY"
CANARY = {"APP_KEY": "reach-canary-71c0e2d4"}
NO_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
UNTRUSTED = "self-signed certificate in certificate chain"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def https(url: str) -> str:
    return url.replace("http://", "https://", 1)


@pytest.fixture
def aws_tls(proxy: Any, ca: TestCA) -> Handshakes:
    """The recording proxy in front of moto, now speaking TLS with a certificate of `ca`."""
    return serve_tls(proxy.server, ca.server_context())


@pytest.fixture
def oidc_tls(oidc: Any, ca: TestCA) -> Handshakes:
    return serve_tls(oidc.server, ca.server_context())


def sync(action: Any, *, role: str | None = ROLE, env=None, inputs=None, **kwargs: Any) -> Any:
    given = {"secrets": MAPPING, **({"role-to-assume": role} if role else {}), **(inputs or {})}
    return action(given, env={**CANARY, **(env or {})}, **kwargs)


def failed_once(run: Any) -> str:
    """Exit 1, one error annotation (said again in the summary), no traceback anywhere."""
    assert run.returncode == 1, run.stdout + run.stderr
    assert len(run.errors) == 1, run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert "secrets-sync failed" in run.summary
    assert_run_clean(run, CANARY.values())
    return str(run.errors[0])


def tls_env(proxy: Any, oidc: Any) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": https(proxy.url),
        "ACTIONS_ID_TOKEN_REQUEST_URL": https(oidc.url),
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": oidc.request_token,
    }


# A private CA (point 4) --------------------------------------------------------------------------


def test_ca_bundle_is_trusted_for_the_token_service_and_aws(
    action, proxy, oidc, ca, aws_tls, oidc_tls
):
    run = sync(
        action,
        env=tls_env(proxy, oidc),
        inputs={"ca-bundle": "certs/corp-ca.pem"},
        files={"certs/corp-ca.pem": ca.pem},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    assert [r.status for r in oidc.requests] == [200]
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]
    assert "CreateSecret" in proxy.ops()
    assert aws_tls.failed == 0
    assert aws_tls.accepted >= 1
    assert oidc_tls.failed == 0
    assert oidc_tls.accepted == 1


def test_an_untrusted_token_service_is_one_error_and_not_retried(action, proxy, oidc, oidc_tls):
    run = sync(action, env={**oidc.env(), "ACTIONS_ID_TOKEN_REQUEST_URL": https(oidc.url)})
    message = failed_once(run)
    assert f"ca-bundle: the TLS certificate of 127.0.0.1 is not trusted ({UNTRUSTED})." in message
    assert "give that CA's certificate as `ca-bundle:`" in message
    assert oidc_tls.accepted == 1  # one attempt: the next would meet the same certificate
    assert oidc.requests == []
    assert proxy.calls == []


@pytest.mark.parametrize("role", [ROLE, None], ids=["sts", "secrets-manager"])
def test_an_untrusted_aws_endpoint_is_one_error_and_not_retried(action, proxy, oidc, aws_tls, role):
    run = sync(action, role=role, env={**oidc.env(), "AWS_ENDPOINT_URL": https(proxy.url)})
    message = failed_once(run)
    assert f"ca-bundle: the TLS certificate of 127.0.0.1 is not trusted ({UNTRUSTED})." in message
    # STS: one call. Secrets Manager: ListSecrets and BatchGetSecretValue may start together;
    # neither is tried again.
    assert 1 <= aws_tls.accepted <= (1 if role else 2)
    assert proxy.calls == []


def test_a_ca_bundle_without_the_signing_ca_says_so(action, proxy, oidc, oidc_tls):
    other = TestCA("another CA")
    run = sync(
        action,
        env={**oidc.env(), "ACTIONS_ID_TOKEN_REQUEST_URL": https(oidc.url)},
        inputs={"ca-bundle": "other.pem"},
        files={"other.pem": other.pem},
    )
    message = failed_once(run)
    assert f"is not trusted ({UNTRUSTED})" in message
    assert "`ca-bundle` (other.pem) lacks the CA that signed it" in message


@pytest.mark.parametrize(
    ("path", "files", "expected"),
    [
        ("missing.pem", {}, "'missing.pem' does not exist in the workspace."),
        ("ca.pem", {"ca.pem": "not a certificate\n"}, "'ca.pem' holds no PEM certificate."),
        (
            "ca.pem",
            {"ca.pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "'ca.pem' is not a readable PEM bundle",
        ),
        ("../outside.pem", {}, "'../outside.pem' points outside the workspace."),
    ],
)
def test_a_bad_ca_bundle_is_an_input_error_before_any_call(
    action, proxy, oidc, path, files, expected
):
    run = sync(action, env=oidc.env(), inputs={"ca-bundle": path}, files=files)
    message = failed_once(run)
    assert message.startswith("::error title=secrets-sync::input `ca-bundle`: ")
    assert expected in message
    assert oidc.requests == []
    assert proxy.calls == []


def test_aws_ca_bundle_and_ssl_cert_file_are_honoured(
    action, proxy, oidc, ca, aws_tls, oidc_tls, tmp_path
):
    """As the SDK and Python define them: AWS_CA_BUNDLE for AWS, SSL_CERT_FILE for the token
    service (Python's default roots). Neither is the input, and neither needs the workspace."""
    pem = tmp_path / "host-ca.pem"
    pem.write_text(ca.pem)
    env = {**tls_env(proxy, oidc), "AWS_CA_BUNDLE": str(pem), "SSL_CERT_FILE": str(pem)}
    run = sync(action, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    assert aws_tls.failed == 0
    assert oidc_tls.failed == 0


def test_ca_bundle_adds_to_aws_ca_bundle(action, proxy, oidc, ca, aws_tls, tmp_path):
    """AWS_CA_BUNDLE names the roots botocore trusts (here: another CA only); `ca-bundle` adds
    the test CA to them, and the AWS endpoint it signs is trusted."""
    other = tmp_path / "other.pem"
    other.write_text(TestCA("another CA").pem)
    env = {"AWS_ENDPOINT_URL": https(proxy.url), "AWS_CA_BUNDLE": str(other)}
    run = sync(action, role=None, env=env, inputs={"ca-bundle": "ca.pem"}, files={"ca.pem": ca.pem})
    assert run.returncode == 0, run.stdout + run.stderr
    assert aws_tls.failed == 0


# Proxies (point 5) -------------------------------------------------------------------------------


@pytest.fixture
def forward() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


def netloc(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
def test_every_call_goes_through_the_proxy(action, proxy, oidc, forward, name):
    run = sync(action, env={**oidc.env(), name: forward.url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    # The token service, STS and Secrets Manager: every call, through the proxy.
    assert forward.hosts() == {netloc(oidc.url), netloc(proxy.url)}
    asked = [target for _, target in forward.seen]
    assert sum("idtoken" in t for t in asked) == len(oidc.requests) == 1
    assert len(asked) == len(oidc.requests) + len(proxy.calls)


@pytest.mark.parametrize("name", ["NO_PROXY", "no_proxy"])
def test_no_proxy_bypasses_the_proxy(action, proxy, oidc, forward, name):
    env = {**oidc.env(), "HTTPS_PROXY": forward.url, "HTTP_PROXY": forward.url, name: "127.0.0.1"}
    run = sync(action, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert forward.seen == []
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]


def test_https_through_the_proxy_tunnels_with_the_ca_bundle(
    action, proxy, oidc, ca, aws_tls, oidc_tls, forward
):
    env = {**tls_env(proxy, oidc), "https_proxy": forward.url}
    run = sync(action, env=env, inputs={"ca-bundle": "ca.pem"}, files={"ca.pem": ca.pem})
    assert run.returncode == 0, run.stdout + run.stderr
    assert {m for m, _ in forward.seen} == {"CONNECT"}
    assert forward.hosts() == {netloc(oidc.url), netloc(proxy.url)}
    assert oidc_tls.accepted == 1
    assert aws_tls.failed == 0


# Self-hosted identities (point 6) ---------------------------------------------------------------


def test_imds_behind_a_hop_limit_of_one_names_the_setting_and_the_command(action, proxy):
    with HopLimitedMetadata() as meta:
        env = {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": meta.url,
            "AWS_METADATA_SERVICE_TIMEOUT": "1",
            "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
        }
        run = sync(action, role=None, env=env, drop=[*NO_KEYS, "AWS_EC2_METADATA_DISABLED"])
    message = failed_once(run)
    assert "HttpPutResponseHopLimit is 1" in message
    assert "aws ec2 modify-instance-metadata-options --instance-id INSTANCE_ID" in message
    assert "--http-put-response-hop-limit 2" in message
    assert "no AWS credentials were found" not in message
    assert meta.puts >= 1
    assert proxy.calls == []


def test_a_metadata_service_that_is_not_there_is_no_credentials(action, proxy):
    """Not an EC2 instance (nothing listens): the usual message, not the hop limit's."""
    env = {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "AWS_METADATA_SERVICE_TIMEOUT": "1",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
    }
    run = sync(action, role=None, env=env, drop=[*NO_KEYS, "AWS_EC2_METADATA_DISABLED"])
    assert "credentials: no AWS credentials were found." in failed_once(run)


@pytest.mark.parametrize("role", [ROLE, None], ids=["chaining", "ambient"])
def test_an_irsa_token_file_the_container_cannot_see(action, proxy, role):
    env = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/arc-runner",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    }
    run = sync(action, role=role, env=env, drop=NO_KEYS)
    message = failed_once(run)
    assert message.startswith("::error title=secrets-sync::AWS_WEB_IDENTITY_TOKEN_FILE: names ")
    assert "'/var/run/secrets/eks.amazonaws.com/serviceaccount/token'" in message
    assert "which this container cannot see" in message
    assert "copy the token into the workspace" in message
    assert proxy.calls == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_pod_identity_endpoint(action, proxy):
    uri = f"http://127.0.0.1:{closed_port()}/v1/credentials"
    run = sync(action, role=None, env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}, drop=NO_KEYS)
    message = failed_once(run)
    assert message.startswith("::error title=secrets-sync::AWS_CONTAINER_CREDENTIALS_FULL_URI: ")
    assert "the container-credentials endpoint at 127.0.0.1 (EKS Pod Identity or ECS)" in message
    assert "CredentialRetrievalError" in message
    assert proxy.calls == []


# The pure parts -------------------------------------------------------------------------------


def test_account_ids_are_split_on_commas_and_newlines_and_checked():
    from secrets_sync.errors import InputError
    from secrets_sync.inputs import account_ids

    assert account_ids("x", "") == ()
    assert account_ids("x", " 111111111111,\n222222222222\n\n111111111111 ") == (
        "111111111111",
        "222222222222",
    )
    for bad in ("11111111111", "1111111111111", "aws-111111111111", "\u0661" * 12):
        with pytest.raises(InputError, match="is not an AWS account ID"):
            account_ids("allowed-account-ids", bad)


def test_the_account_of_an_assumed_role_arn():
    from secrets_sync.credentials import _account_of

    assert _account_of("arn:aws:sts::123456789012:assumed-role/r/s") == "123456789012"
    assert _account_of("arn:aws-cn:sts::210987654321:assumed-role/r/s") == "210987654321"
    assert _account_of("arn:aws:sts::ACCOUNT:assumed-role/r/s") is None
    assert _account_of("") is None


def test_a_certificate_failure_is_found_however_it_was_wrapped():
    import ssl
    import urllib.error

    from botocore.exceptions import EndpointConnectionError, SSLError

    from secrets_sync.tls import certificate_failure

    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert certificate_failure(urllib.error.URLError(failure)) is failure
    assert certificate_failure(SSLError(endpoint_url="https://x", error=failure)) is failure
    outer = OSError("wrapped")
    outer.__cause__ = failure
    assert certificate_failure(outer) is failure
    assert certificate_failure(EndpointConnectionError(endpoint_url="https://x")) is None
    assert certificate_failure(ssl.SSLError(1, "wrong version number")) is None
    assert certificate_failure(None) is None


def test_the_metadata_probe_is_skipped_where_it_cannot_help():
    from secrets_sync.self_hosted import imds_hop_limit

    # No request is made: an endpoint that would hang the test shows it.
    never = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://192.0.2.1"}
    assert imds_hop_limit({**never, "AWS_EC2_METADATA_DISABLED": "TRUE"}) is None
    assert imds_hop_limit({**never, "RUNNER_ENVIRONMENT": "github-hosted"}) is None
    assert imds_hop_limit({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "file:///etc/passwd"}) is None
