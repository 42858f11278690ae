"""A whole sync: what the mapping drops is undone on secrets this repository manages. Tags this
action set and the mapping no longer has are removed (never a tag it did not set), replica
regions dropped from the mapping are removed, a replica whose KMS key changed is made again with
it, and a changed `kms-key-id` is applied; each in the plan, the dry run, the summary and
`results`, with no value written, and a no-op still two read calls."""

from __future__ import annotations

from typing import Any

from secrets_sync.tagrecord import TAGS_RECORD
from tests.conftest import REGION
from tests.support.action import OURS, WRITES, assert_run_clean
from tests.test_real_aws import client

PREFIX = "app/"
ENV = {"K": "removal-canary-value-1"}
KEY_A = "arn:aws:kms:us-east-1:123456789012:key/11111111-aaaa-4aaa-8aaa-111111111111"
KEY_B = "arn:aws:kms:us-east-1:123456789012:key/22222222-bbbb-4bbb-8bbb-222222222222"
EU_A = "arn:aws:kms:eu-west-1:123456789012:key/33333333-cccc-4ccc-8ccc-333333333333"
EU_B = "arn:aws:kms:eu-west-1:123456789012:key/44444444-dddd-4ddd-8ddd-444444444444"


def tags_of(sm: Any, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}


def writes(proxy: Any) -> list[str]:
    return sorted(op for op in proxy.ops() if op in WRITES)


def sync(action: Any, mapping: str, **inputs: str) -> Any:
    run = action({"secrets": mapping, "name-prefix": PREFIX, **inputs}, env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_run_clean(run, ENV.values())
    return run


def noop(action: Any, proxy: Any, mapping: str) -> Any:
    proxy.reset()
    run = sync(action, mapping)
    assert run.outputs["changed"] == "false"
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]
    return run


# Tags -----------------------------------------------------------------------------------------


def test_a_tag_this_action_set_is_removed_when_the_mapping_drops_it(action, proxy, sm, realaws):
    sync(action, "key: {keys: [K], tags: {Team: core, Env: dev}}", **{"default-tags": "Org: x"})
    assert tags_of(sm, "app/key")[TAGS_RECORD] == "Env+Org+Team"
    realaws.settle()
    version = sm.get_secret_value(SecretId="app/key")["VersionId"]

    # A dry run says what would come off, and writes nothing.
    proxy.reset()
    dry = sync(action, "key: {keys: [K], tags: {Team: core}}", **{"dry-run": "true"})
    assert writes(proxy) == []
    assert dry.results()["app/key"]["action"] == "tag"
    assert dry.results()["app/key"]["removed_tags"] == ["Env", "Org"]
    assert 'removes tags "Env", "Org"' in dry.summary
    assert any('removes tags "Env", "Org"' in line for line in dry.log_lines)

    proxy.reset()
    run = sync(action, "key: {keys: [K], tags: {Team: core}}")
    assert run.results()["app/key"]["action"] == "tag"
    assert run.results()["app/key"]["removed_tags"] == ["Env", "Org"]
    assert run.json("updated") == ["app/key"]
    (untag,) = [c for c in proxy.calls if c.operation == "UntagResource"]
    assert untag.body["TagKeys"] == ["Env", "Org"]
    assert "PutSecretValue" not in proxy.ops()  # removing a tag writes no value
    assert "| `app/key` | tag: " in run.summary
    assert "removes tags" in run.summary
    tags = tags_of(sm, "app/key")
    assert "Env" not in tags
    assert "Org" not in tags
    assert tags["Team"] == "core"
    assert tags[TAGS_RECORD] == "Team"
    assert tags["ManagedBy"] == "secrets-sync"  # the ownership tags stay
    assert sm.get_secret_value(SecretId="app/key")["VersionId"] == version

    noop(action, proxy, "key: {keys: [K], tags: {Team: core}}")

    # The last of them: the record goes with it, in the same UntagResource.
    proxy.reset()
    sync(action, "key: {keys: [K]}")
    (untag,) = [c for c in proxy.calls if c.operation == "UntagResource"]
    assert untag.body["TagKeys"] == ["Team", TAGS_RECORD]
    assert set(tags_of(sm, "app/key")) == {"ManagedBy", "secrets-sync:repository"}
    noop(action, proxy, "key: {keys: [K]}")


def test_a_tag_this_action_did_not_set_is_never_removed(action, proxy, sm, realaws):
    # Set by hand before adoption: Team (the mapping never names it), Owner (the mapping names
    # it with the same value, so the action never writes it) and Env (overwritten: then set by
    # the action, and removed when dropped).
    sm.create_secret(
        Name="app/key",
        SecretString='{"K": "removal-canary-value-1"}',
        Tags=[
            {"Key": "Team", "Value": "platform"},
            {"Key": "Owner", "Value": "alice"},
            {"Key": "Env", "Value": "old"},
        ],
    )
    run = sync(action, "key: {keys: [K], tags: {Owner: alice, Env: dev}}")
    assert run.results()["app/key"]["action"] == "tag"
    assert tags_of(sm, "app/key")[TAGS_RECORD] == "Env"

    proxy.reset()
    run = sync(action, "key: [K]")
    assert run.results()["app/key"]["removed_tags"] == ["Env"]
    tags = tags_of(sm, "app/key")
    assert tags["Team"] == "platform"
    assert tags["Owner"] == "alice"
    assert "Env" not in tags

    # A tag set by hand later, under a key the action once removed, stays too.
    sm.tag_resource(SecretId="app/key", Tags=[{"Key": "Env", "Value": "by-hand"}])
    realaws.settle()
    run = noop(action, proxy, "key: [K]")
    assert run.results()["app/key"]["removed_tags"] == []
    assert tags_of(sm, "app/key")["Env"] == "by-hand"


def test_a_secret_managed_before_the_record_existed_loses_no_tag(action, proxy, sm):
    # What v1.1 left: our tags and the user's, no record.
    sm.create_secret(
        Name="app/key",
        SecretString='{"K": "removal-canary-value-1"}',
        Tags=[*OURS, {"Key": "Team", "Value": "core"}, {"Key": "Env", "Value": "dev"}],
    )
    noop(action, proxy, "key: {keys: [K], tags: {Team: core}}")
    assert tags_of(sm, "app/key")["Env"] == "dev"


def test_a_record_another_hand_wrote_on_an_unmanaged_secret_is_not_trusted(action, proxy, sm):
    sm.create_secret(
        Name="app/key",
        SecretString='{"K": "removal-canary-value-1"}',
        Tags=[{"Key": "Team", "Value": "core"}, {"Key": TAGS_RECORD, "Value": "Team"}],
    )
    run = sync(action, "key: [K]")  # adopted: nothing removed on the way in
    assert run.results()["app/key"]["removed_tags"] == []
    assert "UntagResource" not in proxy.ops()
    assert tags_of(sm, "app/key")["Team"] == "core"
    assert tags_of(sm, "app/key")[TAGS_RECORD] == ""  # emptied: nothing in it is ours
    run = sync(action, "key: [K]")  # and once ours, still nothing to remove
    assert run.results()["app/key"]["removed_tags"] == []
    assert tags_of(sm, "app/key")["Team"] == "core"


def test_tags_to_remove_make_room_under_the_limit(action, proxy, sm, realaws):
    many = "{" + ", ".join(f"T{n}: v" for n in range(44)) + "}"
    sync(action, f"key: {{keys: [K], tags: {many}}}")
    realaws.settle()
    # 44 + ours (2) + the record + the audit trail (2, set by every write) = 49: trading three
    # tags for three others fits only because the three come off first (52 otherwise).
    fewer = "{" + ", ".join([*(f"T{n}: v" for n in range(41)), "N1: v", "N2: v", "N3: v"]) + "}"
    proxy.reset()
    run = sync(action, f"key: {{keys: [K], tags: {fewer}}}")
    assert run.results()["app/key"]["removed_tags"] == ["T41", "T42", "T43"]
    ops = [op for op in proxy.ops() if op in ("UntagResource", "TagResource")]
    assert ops == ["UntagResource", "TagResource"]
    assert {"N1", "N2", "N3"} <= set(tags_of(sm, "app/key"))


# Replicas -------------------------------------------------------------------------------------


def test_a_dropped_replica_region_is_removed(action, proxy, sm, moto, realaws):
    sync(action, "key: {keys: [K], replica-regions: [eu-west-1, eu-west-2]}")
    realaws.settle()

    proxy.reset()
    dry = sync(action, "key: {keys: [K], replica-regions: [eu-west-1]}", **{"dry-run": "true"})
    assert writes(proxy) == []
    assert dry.results()["app/key"]["removed_replicas"] == ["eu-west-2"]
    assert "removes replicas in eu-west-2" in dry.summary

    proxy.reset()
    run = sync(action, "key: {keys: [K], replica-regions: [eu-west-1]}")
    assert run.results()["app/key"]["action"] == "tag"
    assert run.results()["app/key"]["removed_replicas"] == ["eu-west-2"]
    (removal,) = [c for c in proxy.calls if c.operation == "RemoveRegionsFromReplication"]
    assert removal.body["RemoveReplicaRegions"] == ["eu-west-2"]
    assert "PutSecretValue" not in proxy.ops()
    assert "ReplicateSecretToRegions" not in proxy.ops()
    statuses = sm.describe_secret(SecretId="app/key")["ReplicationStatus"]
    assert [s["Region"] for s in statuses] == ["eu-west-1"]
    assert client(moto, "eu-west-2").list_secrets()["SecretList"] == []

    # The mapping drops the last region: the listing says the secret is replicated, so it is
    # read (DescribeSecret) and its replica removed.
    proxy.reset()
    run = sync(action, "key: [K]")
    assert run.results()["app/key"]["removed_replicas"] == ["eu-west-1"]
    assert "ReplicationStatus" not in sm.describe_secret(SecretId="app/key")
    assert client(moto, "eu-west-1").list_secrets()["SecretList"] == []
    noop(action, proxy, "key: [K]")


def test_replicas_of_a_secret_being_adopted_are_left_alone(action, proxy, sm, moto):
    sm.create_secret(
        Name="app/key",
        SecretString='{"K": "removal-canary-value-1"}',
        AddReplicaRegions=[{"Region": "eu-west-1"}],
    )
    run = sync(action, "key: [K]")
    assert run.results()["app/key"]["removed_replicas"] == []
    assert "RemoveRegionsFromReplication" not in proxy.ops()
    assert [s["Region"] for s in sm.describe_secret(SecretId="app/key")["ReplicationStatus"]] == [
        "eu-west-1"
    ]


def test_nothing_is_removed_from_a_replica_of_another_regions_primary(action, proxy, sm, moto):
    # The primary lives in eu-west-1, tagged ours, replicated here and to eu-west-2.
    client(moto, "eu-west-1").create_secret(
        Name="app/key",
        SecretString='{"K": "removal-canary-value-1"}',
        Tags=[*OURS, {"Key": "Team", "Value": "core"}, {"Key": TAGS_RECORD, "Value": "Team"}],
        AddReplicaRegions=[{"Region": REGION}, {"Region": "eu-west-2"}],
    )
    run = action({"secrets": "key: [K]", "name-prefix": PREFIX}, env=ENV)
    assert run.returncode == 1  # a conflict: manage it in its primary's region
    assert "replica of the secret in eu-west-1" in run.results()["app/key"]["error"]
    assert writes(proxy) == []
    primary = client(moto, "eu-west-1").describe_secret(SecretId="app/key")
    assert len(primary["ReplicationStatus"]) == 2
    assert {t["Key"] for t in primary["Tags"]} >= {"Team", TAGS_RECORD}


def test_a_replica_whose_kms_key_changed_is_made_again_with_it(action, proxy, sm, realaws):
    mapping = "key: {keys: [K], replica-regions: [{region: eu-west-1, kms-key-id: %s}]}"
    sync(action, mapping % EU_A)
    realaws.settle()
    noop_run = action({"secrets": mapping % EU_A, "name-prefix": PREFIX}, env=ENV)
    assert noop_run.outputs["changed"] == "false"  # the same key: nothing done

    proxy.reset()
    run = sync(action, mapping % EU_B)
    assert run.results()["app/key"]["action"] == "tag"
    assert "re-adds replicas in eu-west-1 with their new KMS keys" in run.summary
    ops = [c for c in proxy.calls if "Region" in c.operation]
    assert [c.operation for c in ops] == [
        "RemoveRegionsFromReplication",
        "ReplicateSecretToRegions",
    ]
    assert ops[1].body["AddReplicaRegions"] == [{"Region": "eu-west-1", "KmsKeyId": EU_B}]
    (status,) = sm.describe_secret(SecretId="app/key")["ReplicationStatus"]
    assert status["KmsKeyId"] == EU_B
    assert "PutSecretValue" not in proxy.ops()


def test_a_replica_without_a_key_in_the_mapping_keeps_its_own(action, proxy, sm, realaws):
    sync(
        action, f"key: {{keys: [K], replica-regions: [{{region: eu-west-1, kms-key-id: {EU_A}}}]}}"
    )
    realaws.settle()
    proxy.reset()
    run = action(
        {"secrets": "key: {keys: [K], replica-regions: [eu-west-1]}", "name-prefix": PREFIX},
        env=ENV,
    )
    assert run.returncode == 0, run.stdout
    assert run.outputs["changed"] == "false"
    assert writes(proxy) == []


# KMS ------------------------------------------------------------------------------------------


def test_a_changed_kms_key_is_applied_in_one_update_with_the_description(
    action, proxy, sm, realaws
):
    sync(action, f"key: {{keys: [K], kms-key-id: {KEY_A}, description: one}}")
    realaws.settle()
    version = sm.get_secret_value(SecretId="app/key")["VersionId"]

    proxy.reset()
    dry = sync(action, f"key: {{keys: [K], kms-key-id: {KEY_B}}}", **{"dry-run": "true"})
    assert writes(proxy) == []
    assert dry.results()["app/key"]["kms_key_id"] == KEY_B
    assert f"sets KMS key {KEY_B}" in dry.summary

    proxy.reset()
    run = sync(action, f"key: {{keys: [K], kms-key-id: {KEY_B}, description: two}}")
    assert run.results()["app/key"]["action"] == "tag"
    assert run.results()["app/key"]["kms_key_id"] == KEY_B
    (update,) = [c for c in proxy.calls if c.operation == "UpdateSecret"]
    assert (update.body["Description"], update.body["KmsKeyId"]) == ("two", KEY_B)
    assert "SecretString" not in update.body
    assert "PutSecretValue" not in proxy.ops()
    assert sm.describe_secret(SecretId="app/key")["KmsKeyId"] == KEY_B
    assert sm.get_secret_value(SecretId="app/key")["VersionId"] == version
    noop(action, proxy, f"key: {{keys: [K], kms-key-id: {KEY_B}, description: two}}")

    # With a new value too: the value is written, and the key changes in the same run.
    proxy.reset()
    run = action(
        {"secrets": f"key: {{keys: [K], kms-key-id: {KEY_A}}}", "name-prefix": PREFIX},
        env={"K": "removal-canary-value-2"},
    )
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "update"
    assert proxy.ops().count("UpdateSecret") == 1
    assert proxy.ops().count("PutSecretValue") == 1
    assert sm.describe_secret(SecretId="app/key")["KmsKeyId"] == KEY_A


def test_kms_keys_named_in_another_form_or_not_at_all_are_no_change(action, proxy, sm, realaws):
    sync(action, f"key: {{keys: [K], kms-key-id: {KEY_A}}}")
    realaws.settle()
    # No key in the mapping: the secret keeps its own.
    noop(action, proxy, "key: [K]")
    # An alias against a key ARN: only KMS could tell whether they are one key; never churned.
    noop(action, proxy, "key: {keys: [K], kms-key-id: alias/app}")
    # The same key by its ID.
    noop(action, proxy, "key: {keys: [K], kms-key-id: 11111111-aaaa-4aaa-8aaa-111111111111}")
    assert sm.describe_secret(SecretId="app/key")["KmsKeyId"] == KEY_A


def test_the_default_key_named_by_its_alias_is_no_change_and_a_custom_one_is(
    action, proxy, sm, realaws
):
    sync(action, "key: [K]")
    realaws.settle()
    noop(action, proxy, "key: {keys: [K], kms-key-id: alias/aws/secretsmanager}")
    proxy.reset()
    run = sync(action, "key: [K]", **{"kms-key-id": KEY_A})  # the input names it for all
    assert run.results()["app/key"]["kms_key_id"] == KEY_A
    assert sm.describe_secret(SecretId="app/key")["KmsKeyId"] == KEY_A


# A no-op ----------------------------------------------------------------------------------------


def test_a_noop_of_twenty_secrets_stays_two_read_calls(action, proxy, sm, realaws):
    mapping = "\n".join(
        f"s{n}: {{keys: [K], tags: {{Team: core}}, kms-key-id: {KEY_A}}}" for n in range(20)
    )
    sync(action, mapping)
    realaws.settle()
    run = noop(action, proxy, mapping)
    assert len(run.json("unchanged")) == 20
