"""Where real Secrets Manager is stricter than moto: the test layer that models it
(tests/support/realaws/, in every suite's proxy and moto), and the action against it end to end:
replicas (prune, replicas of other regions' primaries, failed replicas, their KMS keys), quotas,
the tag limit on adopted secrets, empty descriptions, creates over planned deletions, and the
messages of what could not be read."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from secrets_sync.versions import new_token
from tests.conftest import REGION
from tests.support.action import OURS, WRITES, assert_run_clean
from tests.support.realaws import DEVIATIONS, moto_patches, proxy_rules

ELSEWHERE = "eu-west-1"
KEEP = {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true"}
ENV = {"KEEP": "keep-real-canary"}


def client(url: str, region: str = REGION) -> Any:
    return boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def code_of(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def ops_on(proxy: Any, name: str) -> list[tuple[str, int]]:
    return [(c.operation, c.status) for c in proxy.calls if name in str(c.secret_id)]


def value(sm: Any, name: str) -> Any:
    return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])


# The layer itself ---------------------------------------------------------------------------


def test_writes_and_creates_over_a_planned_deletion_are_refused(proxy, sm):
    via = client(proxy.url)
    sm.create_secret(Name="gone", SecretString="x")
    sm.delete_secret(SecretId="gone", RecoveryWindowInDays=7)
    sm.put_secret_value(SecretId="gone", SecretString="y")  # moto alone takes it
    for write in (
        lambda: via.put_secret_value(SecretId="gone", SecretString="z"),
        lambda: via.tag_resource(SecretId="gone", Tags=[{"Key": "a", "Value": "b"}]),
        lambda: via.update_secret(SecretId="gone", Description="d"),
    ):
        with pytest.raises(ClientError) as caught:
            write()
        assert code_of(caught) == "InvalidRequestException"
        assert "marked for deletion" in str(caught.value)
    with pytest.raises(ClientError) as caught:
        sm.create_secret(Name="gone", SecretString="x")
    assert code_of(caught) == "ResourceExistsException"  # moto's answer
    with pytest.raises(ClientError) as caught:
        via.create_secret(Name="gone", SecretString="x")
    assert code_of(caught) == "InvalidRequestException"  # AWS's
    assert "scheduled for deletion" in str(caught.value)


def test_a_primary_with_replicas_cannot_be_deleted(proxy, sm):
    via = client(proxy.url)
    sm.create_secret(Name="p", SecretString="x", AddReplicaRegions=[{"Region": ELSEWHERE}])
    with pytest.raises(ClientError) as caught:
        via.delete_secret(SecretId="p", RecoveryWindowInDays=7)
    assert code_of(caught) == "InvalidParameterException"
    assert f"still has replica regions [{ELSEWHERE}]" in str(caught.value)
    via.remove_regions_from_replication(SecretId="p", RemoveReplicaRegions=[ELSEWHERE])
    via.delete_secret(SecretId="p", RecoveryWindowInDays=7)


def test_tag_limit_counts_the_tags_a_secret_has_and_descriptions_are_bounded(proxy, sm):
    via = client(proxy.url)
    sm.create_secret(
        Name="t", SecretString="x", Tags=[{"Key": f"T{n}", "Value": "v"} for n in range(49)]
    )
    with pytest.raises(ClientError) as caught:
        via.tag_resource(
            SecretId="t", Tags=[{"Key": "A", "Value": "1"}, {"Key": "B", "Value": "2"}]
        )
    assert code_of(caught) == "InvalidParameterException"
    via.tag_resource(
        SecretId="t", Tags=[{"Key": "T0", "Value": "again"}, {"Key": "A", "Value": "1"}]
    )
    with pytest.raises(ClientError) as caught:
        via.update_secret(SecretId="t", Description="d" * 2049)
    assert code_of(caught) == "ValidationException"
    via.update_secret(SecretId="t", Description="d" * 2048)


def test_listing_lags_behind_new_secrets_and_shows_no_replication_status(proxy, sm, realaws):
    via = client(proxy.url)
    sm.create_secret(Name="old", SecretString="x", AddReplicaRegions=[{"Region": ELSEWHERE}])
    via.create_secret(Name="fresh", SecretString="x")

    def listed() -> dict[str, Any]:
        return {e["Name"]: e for e in via.list_secrets()["SecretList"]}

    assert sorted(listed()) == [
        "old"
    ]  # AWS: "might not reflect changes from the last five minutes"
    assert "ReplicationStatus" not in listed()["old"]  # DescribeSecret has it, ListSecrets not
    assert listed()["old"]["PrimaryRegion"] == REGION  # a replicated primary names its region
    assert via.describe_secret(SecretId="fresh")["Name"] == "fresh"
    realaws.settle()
    assert sorted(listed()) == ["fresh", "old"]
    assert "PrimaryRegion" not in listed()["fresh"]  # a secret not replicated does not


def test_a_replica_reports_the_kms_key_it_was_given(proxy, sm):
    key = "arn:aws:kms:eu-west-1:123456789012:key/33333333-cccc-4ccc-8ccc-333333333333"
    sm.create_secret(
        Name="r",
        SecretString="x",
        AddReplicaRegions=[{"Region": ELSEWHERE, "KmsKeyId": key}, {"Region": "eu-west-2"}],
    )
    statuses = {
        s["Region"]: s["KmsKeyId"] for s in sm.describe_secret(SecretId="r")["ReplicationStatus"]
    }
    assert statuses == {ELSEWHERE: key, "eu-west-2": "alias/aws/secretsmanager"}


def test_a_batch_read_naming_a_secret_without_a_value_fails_for_that_secret_alone(
    proxy, sm, realaws
):
    via = client(proxy.url)
    sm.create_secret(Name="full", SecretString="full-real-canary")
    sm.create_secret(Name="bin", SecretBinary=b"\x00\x01bin-real-canary")
    sm.create_secret(Name="empty")  # Terraform's secret without a version
    names = ["full", "empty", "bin", "missing"]
    with pytest.raises(ClientError) as caught:
        sm.batch_get_secret_value(SecretIdList=names)
    assert code_of(caught) == "ResourceNotFoundException"  # moto fails the whole call
    answer = via.batch_get_secret_value(SecretIdList=names)  # AWS: per secret
    got = {v["Name"]: v for v in answer["SecretValues"]}
    assert got["full"]["SecretString"] == "full-real-canary"
    assert got["bin"]["SecretBinary"] == b"\x00\x01bin-real-canary"
    assert got["full"]["VersionStages"] == ["AWSCURRENT"]
    assert got["full"]["VersionId"] in sm.describe_secret(SecretId="full")["VersionIdsToStages"]
    errors = {e["SecretId"]: e for e in answer["Errors"]}
    assert sorted(errors) == ["empty", "missing"]
    assert errors["empty"]["ErrorCode"] == "ResourceNotFoundException"
    assert "staging label: AWSCURRENT" in errors["empty"]["Message"]

    realaws.batch_errors_per_secret = False  # moto's reading, which the reads must survive too
    with pytest.raises(ClientError) as caught:
        via.batch_get_secret_value(SecretIdList=names)
    assert code_of(caught) == "ResourceNotFoundException"


@pytest.mark.parametrize("reading", ["kept", "dropped"])
def test_the_labels_of_a_left_version_follow_the_reading_in_force(moto, sm, reading):
    """Both readings of what a plain PutSecretValue does to the other labels of the version
    AWSCURRENT leaves (moto_patches.OLD_VERSION_LABELS): the evidence conflicts, so the tests
    that depend on it run under each (the `label_reading` fixture)."""
    first = sm.create_secret(Name="l", SecretString="1")["VersionId"]
    sm.update_secret_version_stage(SecretId="l", VersionStage="CUSTOM", MoveToVersionId=first)
    with moto_patches.reading(reading):
        sm.put_secret_value(SecretId="l", SecretString="2")
    listed = sm.list_secret_version_ids(SecretId="l")["Versions"]
    stages = {v["VersionId"]: sorted(v["VersionStages"]) for v in listed}
    assert stages[first] == (["AWSPREVIOUS", "CUSTOM"] if reading == "kept" else ["AWSPREVIOUS"])
    assert moto_patches.OLD_VERSION_LABELS == "kept"  # restored after the block


# Replicas ---------------------------------------------------------------------------------


def test_prune_removes_the_replicas_then_schedules_the_deletion(action, proxy, sm, moto):
    sm.create_secret(
        Name="app/gone",
        SecretString="x",
        Tags=OURS,
        AddReplicaRegions=[{"Region": ELSEWHERE}],
        ClientRequestToken=new_token("1", "1"),  # written by secrets-sync: no drift to look for
    )
    run = action(KEEP, env=ENV)
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]
    assert [op for op, _ in ops_on(proxy, "app/gone")] == [
        "DescribeSecret",
        "RemoveRegionsFromReplication",
        "DeleteSecret",
    ]
    assert "DeletedDate" in sm.describe_secret(SecretId="app/gone")
    assert client(moto, ELSEWHERE).list_secrets()["SecretList"] == []

    proxy.reset()
    again = action(KEEP, env=ENV)  # converged: nothing left to do
    assert again.returncode == 0, again.stdout
    assert again.json("deleted") == []


def test_a_replica_of_another_regions_primary_is_never_ours(action, proxy, sm, moto):
    # The primary lives in eu-west-1 and carries our tags: so does its replica here.
    client(moto, ELSEWHERE).create_secret(
        Name="app/theirs",
        SecretString='{"X":"primary-canary"}',
        Tags=OURS,
        AddReplicaRegions=[{"Region": REGION}],
    )
    sm.create_secret(Name="app/gone", SecretString="x", Tags=OURS)
    run = action({**KEEP, "max-deletions": "1"}, env=ENV)  # the replica is not counted
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]
    assert [c.secret_id for c in proxy.calls if c.operation == "DeleteSecret"] == [
        sm.describe_secret(SecretId="app/gone")["ARN"]
    ]

    proxy.reset()
    named = action({"secrets": "theirs: X", "name-prefix": "app/"}, env={"X": "mine-canary"})
    assert named.returncode == 1
    result = named.results()["app/theirs"]
    assert result["action"] == "conflict"
    assert f"replica of the secret in {ELSEWHERE}" in result["error"]
    assert f"aws-region: {ELSEWHERE}" in result["error"]
    assert not WRITES & set(proxy.ops())
    assert_run_clean(named, ["mine-canary", "primary-canary"])


def test_a_failed_replica_is_reported_with_awss_reason_and_retried(action, proxy, sm, moto):
    elsewhere = client(moto, ELSEWHERE)
    elsewhere.create_secret(Name="app/key", SecretString="someone-elses")  # blocks the replica
    inputs = {
        "secrets": f"key: {{keys: [K], replica-regions: [{ELSEWHERE}]}}",
        "name-prefix": "app/",
    }
    env = {"K": "replicated-canary"}

    first = action(inputs, env=env)
    assert first.returncode == 1
    result = first.results()["app/key"]
    assert result["action"] == "create"
    assert f"the replica in {ELSEWHERE} failed" in result["error"]
    assert "already exists" in result["error"]  # AWS's StatusMessage
    assert first.json("failed") == ["app/key"]
    assert value(sm, "app/key") == {"K": "replicated-canary"}  # the write itself stands
    assert "app/key" in first.json("arns")

    proxy.reset()
    second = action(inputs, env=env)  # still blocked: failed again, and retried
    assert second.returncode == 1
    assert "already exists" in second.results()["app/key"]["error"]
    assert [
        op for op, _ in ops_on(proxy, "app/key") if op in WRITES | {"RemoveRegionsFromReplication"}
    ] == [
        "RemoveRegionsFromReplication",
        "ReplicateSecretToRegions",
    ]

    elsewhere.delete_secret(SecretId="app/key", ForceDeleteWithoutRecovery=True)
    third = action(inputs, env=env)  # the cause is gone: the retry succeeds
    assert third.returncode == 0, third.stdout
    assert third.results()["app/key"]["action"] == "tag"
    statuses = sm.describe_secret(SecretId="app/key")["ReplicationStatus"]
    assert [(s["Region"], s["Status"]) for s in statuses] == [(ELSEWHERE, "InSync")]

    proxy.reset()
    fourth = action(inputs, env=env)
    assert fourth.returncode == 0, fourth.stdout
    assert fourth.json("unchanged") == ["app/key"]
    assert not WRITES & set(proxy.ops())
    assert_run_clean(fourth, ["replicated-canary"])


def test_each_replica_region_may_name_its_kms_key(action, proxy, sm):
    mapping = (
        "key: {keys: [K], replica-regions: [{region: eu-west-1, kms-key-id: alias/eu-key}, "
        "eu-west-2]}"
    )
    run = action({"secrets": mapping, "name-prefix": "app/"}, env={"K": "kms-canary"})
    assert run.returncode == 0, run.stdout
    (create,) = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert create.body["AddReplicaRegions"] == [
        {"Region": "eu-west-1", "KmsKeyId": "alias/eu-key"},
        {"Region": "eu-west-2"},  # AWS then uses aws/secretsmanager in eu-west-2
    ]

    proxy.reset()
    more = mapping.replace("eu-west-2]", "eu-west-2, {region: ap-south-1, kms-key-id: alias/ap}]")
    run = action({"secrets": more, "name-prefix": "app/"}, env={"K": "kms-canary"})
    assert run.returncode == 0, run.stdout
    (added,) = [c for c in proxy.calls if c.operation == "ReplicateSecretToRegions"]
    assert added.body["AddReplicaRegions"] == [{"Region": "ap-south-1", "KmsKeyId": "alias/ap"}]


def test_reading_replicas_that_fails_says_so(action, proxy, sm):
    sm.create_secret(Name="app/key", SecretString='{"K":"read-canary"}', Tags=OURS)
    proxy.faults.rule = lambda c: 403 if c.operation == "DescribeSecret" else None
    run = action(
        {"secrets": "key: {keys: [K], replica-regions: [eu-west-1]}", "name-prefix": "app/"},
        env={"K": "read-canary"},
    )
    assert run.returncode == 1
    error = run.results()["app/key"]["error"]
    assert "cannot read its replicas with DescribeSecret" in error
    assert "AccessDeniedException" in error
    assert "current value" not in error
    assert not WRITES & set(proxy.ops())


# Quotas, limits and planned deletions --------------------------------------------------------


# Ours (paced: botocore makes one attempt), and botocore's standard and adaptive modes (for
# bench/throttle.py), which count LimitExceededException as throttling: one hook covers all three.
@pytest.mark.parametrize("mode", ["paced", "standard", "adaptive"])
def test_a_hard_quota_fails_that_secret_at_once_with_no_retry_storm(
    action, proxy, sm, realaws, mode
):
    for i in range(2):
        sm.create_secret(Name=f"q/old{i}", SecretString=json.dumps({f"OLD{i}": "stale"}), Tags=OURS)
    realaws.secrets_quota = 2  # the Region is full: no more secrets
    env = {"OLD0": "o0-canary", "OLD1": "o1-canary", "NEW0": "n0-canary", "NEW1": "n1-canary"}
    mapping = "old0: OLD0\nold1: OLD1\nnew0: NEW0\nnew1: NEW1"
    run = action(
        {"secrets": mapping, "name-prefix": "q/"}, env={**env, "SECRETS_SYNC_RETRY_MODE": mode}
    )
    assert run.returncode == 1
    assert sorted(run.json("failed")) == ["q/new0", "q/new1"]
    assert sorted(run.json("updated")) == ["q/old0", "q/old1"]
    creates = [c.secret_id for c in proxy.calls if c.operation == "CreateSecret"]
    assert sorted(creates) == ["q/new0", "q/new1"]  # once each: neither botocore nor we retry
    for name in ("q/new0", "q/new1"):
        error = run.results()[name]["error"]
        assert "LimitExceededException" in error
        assert "quota" in error
        assert "not retried" in error
    assert_run_clean(run, env.values())


def test_a_create_over_a_planned_deletion_restores_and_writes(action, proxy, realaws):
    via = client(proxy.url)
    # Made and deleted minutes ago: the listing does not show it yet, so the run plans a create.
    via.create_secret(Name="app/key", SecretString='{"K":"old-canary"}', Tags=OURS)
    via.delete_secret(SecretId="app/key", RecoveryWindowInDays=7)
    proxy.reset()
    run = action({"secrets": "key: K", "name-prefix": "app/"}, env={"K": "new-canary"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "restore"
    assert ("CreateSecret", 400) in ops_on(proxy, "app/key")
    assert "DeletedDate" not in via.describe_secret(SecretId="app/key")
    assert value(via, "app/key") == {"K": "new-canary"}
    assert_run_clean(run, ["new-canary", "old-canary"])


# Under AWS's documented answer (an entry in Errors) and moto's (the whole call fails) alike.
@pytest.mark.parametrize("per_secret", [True, False], ids=["aws-errors", "moto-fails-call"])
@pytest.mark.parametrize("tags", [OURS, []], ids=["ours-lost-its-value", "terraforms"])
def test_a_secret_without_a_value_among_thirty_is_filled_and_nothing_else_is_written(
    action, proxy, sm, realaws, per_secret, tags
):
    realaws.batch_errors_per_secret = per_secret
    env = {f"V{i:02d}": f"v{i:02d}-nov-canary" for i in range(31)}
    mapping = "\n".join(f"s{i:02d}: V{i:02d}" for i in range(31))
    inputs = {"secrets": mapping, "name-prefix": "nov/"}
    for i in range(31):
        if i != 17:
            sm.create_secret(
                Name=f"nov/s{i:02d}",
                SecretString=json.dumps({f"V{i:02d}": env[f"V{i:02d}"]}),
                Tags=OURS,
            )
    # In the second batch of 20: a chunk whose other 19 secrets must still be read.
    sm.create_secret(Name="nov/s17", Tags=tags)  # exists, no version: no AWSCURRENT
    before = {i: sm.describe_secret(SecretId=f"nov/s{i:02d}") for i in range(31)}

    run = action(inputs, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("updated") == ["nov/s17"]
    assert len(run.json("unchanged")) == 30
    assert run.json("created") == []
    writes = [(c.operation, c.secret_id) for c in proxy.calls if c.operation in WRITES]
    ids = {before[17]["ARN"], "nov/s17"}
    assert [op for op, sid in writes if sid in ids].count("PutSecretValue") == 1
    assert {sid for _, sid in writes} <= ids  # the others untouched
    assert value(sm, "nov/s17") == {"V17": env["V17"]}
    for i in range(31):
        if i != 17:  # not one new version on the others
            now = sm.describe_secret(SecretId=f"nov/s{i:02d}")
            assert now["VersionIdsToStages"] == before[i]["VersionIdsToStages"]
    # Read alone where the batch by name could not answer for it, and not batched again by ARN.
    assert [c.secret_id for c in proxy.calls if c.operation == "GetSecretValue"].count(
        before[17]["ARN"]
    ) == 1
    assert [c.operation for c in proxy.calls].count("BatchGetSecretValue") == 2
    assert_run_clean(run, env.values())

    proxy.reset()
    again = action(inputs, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(again.json("unchanged")) == 31
    assert [c.operation for c in proxy.calls if c.operation in WRITES] == []
    assert_run_clean(again, env.values())


def test_the_tag_limit_counts_the_tags_an_adopted_secret_has(action, proxy, sm):
    tags = [{"Key": f"T{n}", "Value": "v"} for n in range(49)]
    sm.create_secret(Name="app/key", SecretString='{"K":"old-canary"}', Tags=tags)
    run = action({"secrets": "key: K", "name-prefix": "app/"}, env={"K": "new-canary"})
    assert run.returncode == 1
    result = run.results()["app/key"]
    assert result["action"] == "conflict"
    assert "49 tags" in result["error"]
    assert "allows 50" in result["error"]
    assert not WRITES & set(proxy.ops())  # nothing half-done: not even the value
    assert value(sm, "app/key") == {"K": "old-canary"}


def test_an_empty_description_is_no_change(action, proxy, sm):
    sm.create_secret(Name="app/key", SecretString='{"K":"same-canary"}', Tags=OURS)
    run = action(
        {"secrets": "key: {keys: [K], description: ''}", "name-prefix": "app/"},
        env={"K": "same-canary"},
    )
    assert run.returncode == 0, run.stdout
    assert run.outputs["changed"] == "false"
    assert run.json("unchanged") == ["app/key"]
    assert not WRITES & set(proxy.ops())


# The layer's index -------------------------------------------------------------------------


def test_the_index_names_every_rule_and_patch_of_the_layer_and_nothing_else():
    indexed = [d.rule for d in DEVIATIONS]
    in_code = [
        *proxy_rules.RULES,
        proxy_rules.RealAws.secrets_over_the_quota,
        proxy_rules.RealAws.lagging_listing,
        proxy_rules.RealAws.batch_reads_fail_per_secret,
        *(ours for _, _, ours in moto_patches.PATCHES),
    ]
    assert sorted(f.__qualname__ for f in indexed) == sorted(f.__qualname__ for f in in_code)
    for deviation in DEVIATIONS:
        assert deviation.doc.strip()
        assert deviation.rule.__doc__, f"{deviation.rule.__qualname__} says what AWS does"


def test_the_speed_patches_find_what_moto_finds():
    # moto_patches.SPEED looks a name up under its key before moto's scan of every secret: the
    # same secret, by name, full ARN or partial ARN, and the same miss, as moto's own methods.
    from types import SimpleNamespace

    from moto.secretsmanager.models import SecretsStore

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
    store = SecretsStore()
    for name in ("app/a", "app/b"):
        dict.__setitem__(store, name, SimpleNamespace(name=name, arn=f"{arn}{name}-AbCdEf"))
    replica = SimpleNamespace(name="app/r", arn=f"{arn}app/r-XyZxYz")
    dict.__setitem__(store, replica.arn, replica)  # how moto keeps a replica
    keys = ["app/a", f"{arn}app/b-AbCdEf", f"{arn}app/b", "app/r", replica.arn, "app/none"]
    patched = {k: (k in store, store.get(k)) for k in keys}
    moto = {
        k: (moto_patches._moto_store_contains(store, k), moto_patches._moto_store_get(store, k))
        for k in keys
    }
    assert patched == moto
    assert patched["app/r"] == (True, replica)
    assert patched["app/none"] == (False, None)
    assert store["app/a"] is moto_patches._moto_store_getitem(store, "app/a")
