"""The baseline bench.py measures us against: the loop one writes without thinking, a sequential
boto3 client that gets each secret, then creates or puts it.

Usage: baseline.py DESIRED.json, a JSON object of secret name to SecretString. The endpoint, the
region and the credentials come from the standard AWS_* variables, as for the action. It prints
its counts as JSON on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

TAGS = [{"Key": "ManagedBy", "Value": "baseline"}]


def main(path: str) -> int:
    desired: dict[str, str] = json.loads(Path(path).read_text())
    client = boto3.client("secretsmanager")
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for name, value in desired.items():
        try:
            current = client.get_secret_value(SecretId=name)["SecretString"]
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value, Tags=TAGS)
            counts["created"] += 1
            continue
        if json.loads(current) == json.loads(value):
            counts["unchanged"] += 1
        else:
            client.put_secret_value(SecretId=name, SecretString=value)
            counts["updated"] += 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
