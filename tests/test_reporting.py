"""Every run that reaches AWS says what it wrote, in its outputs and step summary, whatever
fails after the writes: here, the ESO manifests that cannot be written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.action import WRITES, assert_run_clean

MAPPING = "api: {keys: [API_KEY], k8s: {secret: app-secrets}}\nweb: WEB_KEY"
ENV = {"API_KEY": "report-api-canary-value", "WEB_KEY": "report-web-canary-value"}


def test_manifests_that_cannot_be_written_after_the_writes_leave_outputs_and_summary(
    action: Any, proxy: Any, sm: Any
) -> None:
    # While the secrets are written, something puts a file where the manifests' directory
    # should go (the check before any AWS call found none): found only after the writes.
    workspace: list[Path] = []

    def block_the_directory(call: Any) -> None:
        if call.operation == "CreateSecret":
            (workspace[0] / "k8s").write_text("not a directory\n")

    proxy.faults.rule = block_the_directory
    inputs = {"secrets": MAPPING, "name-prefix": "app/", "eso-manifests": "k8s/es.yaml"}
    started = action.start(inputs, env=ENV)
    workspace.append(started.workspace)
    run = started.finish()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert sorted(c.secret_id for c in proxy.calls if c.operation == "CreateSecret") == [
        "app/api",
        "app/web",
    ]
    # The outputs and the summary say what was written...
    assert sorted(run.json("created")) == ["app/api", "app/web"]
    assert sorted(run.json("arns")) == ["app/api", "app/web"]
    assert run.outputs["changed"] == "true"
    assert "manifests" not in run.outputs
    assert "| `app/api` | create |" in run.summary
    # ...and the failure is named, once in the log and once in the summary, with its fix.
    [error] = [line for line in run.errors if "eso-manifests" in line]
    assert "cannot go below 'k8s', which is a file" in error
    assert "### secrets-sync failed" in run.summary
    assert "input `eso-manifests`: cannot go below 'k8s'" in run.summary
    assert {c.operation for c in proxy.calls if c.operation in WRITES} <= {
        "CreateSecret",
        "UpdateSecretVersionStage",
    }
    assert_run_clean(run, ENV.values())
