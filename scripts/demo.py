"""`make demo`: a local AWS endpoint (moto in server mode on 127.0.0.1), and the action's real
entrypoint run against it the way the runner runs it: a dry run, a sync, a no-op sync, then a
value edited outside secrets-sync: the drift alarm catches it and a sync repairs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.realaws import moto_server  # noqa: E402 - moto held to AWS's rules

MAPPING = "examples/secrets-sync.yml"
# Obviously fake values, handed over by name as a workflow's `env:` would.
DEMO_VALUES = {
    "RESEND_API_KEY": "re_demo_not_a_real_key",
    "DB_USER": "demo_user",
    "DB_PASSWORD": "demo-password-not-real",
    "STRIPE_KEY": "sk_test_demo_not_real",
    "STRIPE_WEBHOOK": "whsec_demo_not_real",
    "SENTRY_DSN": "https://demo@sentry.invalid/1",
}


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def run(
    title: str, endpoint: str, work: Path, extra: dict[str, str], *, expect: int = 0, run_id: int
) -> None:
    output, summary = work / "github_output", work / "step_summary"
    output.write_text("")
    summary.write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "GITHUB_REPOSITORY": "lornu-ai/demo",
        # The audit trail: the run and commit tags, and the run-named role session.
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": str(run_id),
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_WORKSPACE": str(ROOT),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo-access-key-id",
        "AWS_SECRET_ACCESS_KEY": "demo-secret-access-key",
        "AWS_EC2_METADATA_DISABLED": "true",
        "INPUT_SECRETS-FILE": MAPPING,
        "INPUT_AWS-REGION": "us-east-1",
        "INPUT_NAME-PREFIX": "lornu-ai/",
        "INPUT_DEFAULT-TAGS": "Environment: demo",
        **DEMO_VALUES,
        **extra,
    }
    banner(f"{title}\n$ python entrypoint.py   (inputs as INPUT_* variables, values by env)")
    code = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")], env=env, check=False
    ).returncode
    print(f"\nexit code: {code} (expected {expect})")
    print("\n--- step summary ($GITHUB_STEP_SUMMARY) ---")
    print(summary.read_text().rstrip())
    print("\n--- step outputs ($GITHUB_OUTPUT) ---")
    print(output.read_text().rstrip())
    if code != expect:
        raise SystemExit(code or 1)


def edit_in_the_console(endpoint: str) -> None:
    banner("4. Someone changes lornu-ai/db outside secrets-sync (PutSecretValue, as the console)")
    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="demo-access-key-id",
        aws_secret_access_key="demo-secret-access-key",
    )
    client.put_secret_value(
        SecretId="lornu-ai/db", SecretString='{"DB_USER":"demo_user","DB_PASSWORD":"edited"}'
    )
    stages = client.describe_secret(SecretId="lornu-ai/db")["VersionIdsToStages"]
    for version, labels in stages.items():
        print(f"  version {version}: {', '.join(labels) or '(no labels)'}")


def main() -> int:
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        print(f"moto (local AWS endpoint) listening on {endpoint}; mapping: {MAPPING}")
        work = Path(tmp)
        dry = {"INPUT_DRY-RUN": "true"}
        run("1. Dry run: the plan, no write call", endpoint, work, dry, run_id=1)
        run("2. Sync: every secret is created", endpoint, work, {}, run_id=2)
        run("3. Sync again: nothing changed, nothing written", endpoint, work, {}, run_id=3)
        edit_in_the_console(endpoint)
        alarm = {**dry, "INPUT_ON-DRIFT": "fail"}
        run(
            "5. The drift alarm (dry run, on-drift: fail)",
            endpoint,
            work,
            alarm,
            expect=1,
            run_id=5,
        )
        run("6. Sync: the drift is overwritten, with a warning", endpoint, work, {}, run_id=6)
        run("7. Sync again: no drift, nothing written", endpoint, work, {}, run_id=7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
