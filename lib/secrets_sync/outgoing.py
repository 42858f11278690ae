"""Every value this action sends to Secrets Manager, and every value AWS makes up for it,
registered with the runner's redaction before anything can print it: one botocore event hook
on the client, so that no path that builds a value (a merge built at apply time, after a retry,
a lost race or a restore) can forget to, and no new path has to remember."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .plan import json_members
from .runner import Runner
from .sources import binary_forms

# The calls that carry a value (SecretString or SecretBinary) to Secrets Manager.
SENDING = ("CreateSecret", "PutSecretValue", "UpdateSecret")
# The calls whose answer holds a value AWS made: registered and masked the moment it arrives.
GENERATING = {"GetRandomPassword": "RandomPassword"}


def sent_forms(params: Mapping[str, Any]) -> list[str]:
    """What of a request could come back in an AWS error that echoes it: the whole string, each
    member of a JSON object (as its text and as the string it holds), and a binary's forms."""
    out: list[str] = []
    text = params.get("SecretString")
    if isinstance(text, str) and text:
        out.append(text)
        for _, _, raw in json_members(text) or ():
            value = json.loads(raw)
            out += [value] if isinstance(value, str) else []
            out += [raw[1:-1] if raw.startswith('"') else raw]
    data = params.get("SecretBinary")
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes | bytearray) and data:
        out += binary_forms(bytes(data))
    return out


def install(client: Any, runner: Runner) -> None:
    """Hook the redaction into a Secrets Manager client: once, for every call it will make.

    `before-parameter-build` runs before botocore validates or sends anything (so before any
    error, its message, or a debug log of the request can exist); `after-call` runs as the
    answer is parsed, before the caller sees it."""
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()

    def sending(params: Mapping[str, Any], **_: Any) -> None:
        # Values the mapping gave were masked at birth; what else a request holds was read
        # from AWS (a merge's other keys): our redaction only, no `::add-mask::` line, which
        # would put it in the log stream itself.
        runner.add_masks(sent_forms(params), tell_runner=False)

    def generated(parsed: Mapping[str, Any], **kwargs: Any) -> None:
        field = GENERATING[kwargs["event_name"].rsplit(".", 1)[-1]]
        value = parsed.get(field)
        if isinstance(value, str) and value:
            runner.add_masks([value])  # a new value: the runner must mask it too

    for operation in SENDING:
        events.register(
            f"before-parameter-build.{service}.{operation}",
            sending,
            unique_id=f"secrets-sync-redact-{operation}",
        )
    for operation in GENERATING:
        events.register(
            f"after-call.{service}.{operation}",
            generated,
            unique_id=f"secrets-sync-redact-{operation}",
        )
