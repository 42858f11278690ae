"""`make demo`: a local AWS endpoint (moto in server mode on 127.0.0.1), and the action's real
entrypoint run against it the way the runner runs it: a dry run, a sync, and a no-op sync."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def run(title: str, endpoint: str, work: Path, extra: dict[str, str]) -> None:
    output, summary = work / "github_output", work / "step_summary"
    output.write_text("")
    summary.write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "GITHUB_REPOSITORY": "lornu-ai/demo",
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
    print(f"\nexit code: {code}")
    print("\n--- step summary ($GITHUB_STEP_SUMMARY) ---")
    print(summary.read_text().rstrip())
    print("\n--- step outputs ($GITHUB_OUTPUT) ---")
    print(output.read_text().rstrip())
    if code != 0:
        raise SystemExit(code)


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"moto (local AWS endpoint) listening on {endpoint}; mapping: {MAPPING}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            run("1. Dry run: the plan, no write call", endpoint, work, {"INPUT_DRY-RUN": "true"})
            run("2. Sync: every secret is created", endpoint, work, {})
            run("3. Sync again: nothing changed, nothing written", endpoint, work, {})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
