"""The core, end to end: the entrypoint as the runner runs it, against moto over HTTP."""

from __future__ import annotations

import json

from tests.support.action import REPOSITORY, assert_run_clean

MAPPING = """
resend-api-key: RESEND_API_KEY
db: [DB_USER, DB_PASSWORD]
stripe:
  description: Stripe for billing
  keys: { api_key: STRIPE_KEY, webhook_secret: STRIPE_WEBHOOK }
  tags: { Team: billing }
sentry-dsn: { value: SENTRY_DSN }
"""
CANARIES = {
    "RESEND_API_KEY": "re_canary_7f3a9c1d2e",
    "DB_USER": "canary-user-b81f",
    "DB_PASSWORD": 'p@ss"w0rd\\canary\nsecond-line-canary',
    "STRIPE_KEY": "sk_live_canary_0c9d8e",
    "STRIPE_WEBHOOK": "whsec_canary_ünïcødé_42",
    "SENTRY_DSN": "https://canary0123@sentry.example/1",
}


def test_create_then_noop(action, proxy, sm):
    inputs = {"secrets": MAPPING, "name-prefix": "lornu-ai/"}
    first = action(inputs, env=CANARIES)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(first.json("created")) == [
        "lornu-ai/db",
        "lornu-ai/resend-api-key",
        "lornu-ai/sentry-dsn",
        "lornu-ai/stripe",
    ]
    assert first.outputs["changed"] == "true"

    db = json.loads(sm.get_secret_value(SecretId="lornu-ai/db")["SecretString"])
    assert db == {"DB_USER": CANARIES["DB_USER"], "DB_PASSWORD": CANARIES["DB_PASSWORD"]}
    stripe = sm.describe_secret(SecretId="lornu-ai/stripe")
    assert stripe["Description"] == "Stripe for billing"
    tags = {t["Key"]: t["Value"] for t in stripe["Tags"]}
    assert tags == {
        "Team": "billing",
        "ManagedBy": "secrets-sync",
        "secrets-sync:repository": REPOSITORY,
    }
    plain = sm.get_secret_value(SecretId="lornu-ai/sentry-dsn")["SecretString"]
    assert plain == CANARIES["SENTRY_DSN"]
    arns = first.json("arns")
    assert arns["lornu-ai/stripe"] == stripe["ARN"]
    assert "| `lornu-ai/stripe` | create |" in first.summary
    assert "`api_key`, `webhook_secret`" in first.summary
    assert_run_clean(first, CANARIES.values())

    proxy.reset()
    second = action(inputs, env=CANARIES)
    assert second.returncode == 0, second.stdout
    assert second.outputs["changed"] == "false"
    assert sorted(second.json("unchanged")) == sorted(arns)
    assert second.json("arns") == arns
    assert proxy.ops() == ["ListSecrets", "BatchGetSecretValue"]
    assert_run_clean(second, CANARIES.values())
