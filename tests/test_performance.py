"""Performance contracts that can be proved without a clock: the number of AWS calls a run makes,
and how many of them are in flight at once (the proxy's high-water mark, counted as requests
arrive and leave). Wall-clock figures live in bench/, never in an assertion here."""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secrets_sync.runner import REDACTED, Runner
from secrets_sync.versions import new_token
from tests.support.action import REPOSITORY

PREFIX = "perf/"
# With a role and ambient credentials the action takes sts:AssumeRole; the budget allows it once.
ROLE = "arn:aws:iam::123456789012:role/secrets-sync-perf"
OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": REPOSITORY},
]


def mapping(n: int) -> str:
    return "\n".join(f"s{i:04d}: V{i:04d}" for i in range(n))


def values(n: int, generation: str = "one") -> dict[str, str]:
    return {f"V{i:04d}": f"{generation}-canary-{i:04d}" for i in range(n)}


def inputs(n: int, **more: str) -> dict[str, str]:
    return {"secrets": mapping(n), "name-prefix": PREFIX, "role-to-assume": ROLE, **more}


def budget(n: int) -> dict[str, int]:
    """The most calls of each kind a no-op run of n secrets may make."""
    return {
        "sts": 1,
        "ListSecrets": max(1, math.ceil(n / 100)),
        "BatchGetSecretValue": math.ceil(n / 20),
    }


def calls_by_kind(proxy) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for call in proxy.calls:
        kinds["sts" if call.service == "sts" else call.operation or call.service] += 1
    return kinds


def seed(sm, n: int, generation: str = "one") -> None:
    """n secrets as a previous run would have left them, written straight into moto: with our
    token as the current version id, so that a no-op's budget covers the drift check too."""
    for name, value in values(n, generation).items():
        sm.create_secret(
            Name=f"{PREFIX}s{name[1:]}",
            SecretString=f'{{"{name}":"{value}"}}',
            Tags=OURS,
            ClientRequestToken=new_token("1", "1"),
        )


@pytest.mark.parametrize("n", [1, 45])
def test_noop_run_stays_within_the_call_budget(action, proxy, sm, n):
    seed(sm, n)
    run = action(inputs(n), env=values(n))
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.json("unchanged")) == n
    kinds = calls_by_kind(proxy)
    allowed = budget(n)
    assert set(kinds) <= set(allowed), f"calls outside the budget: {kinds}"
    for kind, most in allowed.items():
        assert kinds[kind] <= most, f"{kinds[kind]} {kind} calls, budget {most}"
    # Reading is not skimped either: every value is read, in full batches.
    assert kinds["BatchGetSecretValue"] == math.ceil(n / 20)
    ids = [c.body["SecretIdList"] for c in proxy.calls if c.operation == "BatchGetSecretValue"]
    assert sorted(len(chunk) for chunk in ids) == sorted(
        [20] * (n // 20) + ([n % 20] if n % 20 else [])
    )


def test_batch_reads_go_out_in_parallel(action, proxy, sm):
    seed(sm, 100)
    proxy.faults.latency = 0.1  # long enough that the five batch calls overlap at the proxy
    run = action(inputs(100, **{"max-concurrency": "8"}), env=values(100))
    assert run.returncode == 0, run.stdout + run.stderr
    assert proxy.ops().count("BatchGetSecretValue") == 5
    assert proxy.peak("BatchGetSecretValue") == 5
    assert proxy.peak("ListSecrets") == 1  # pages follow their NextToken, one after another


def test_values_are_read_while_the_listing_runs(action, proxy, sm):
    # Values are asked for by name beside ListSecrets, so a no-op run spends one round trip
    # reading, not two: the listing and the batch read are in flight at the same time.
    seed(sm, 10)
    proxy.faults.latency = 0.1
    run = action(inputs(10), env=values(10))
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.json("unchanged")) == 10
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]
    assert proxy.peak() == 2


def test_listing_pages_go_out_side_by_side_unless_a_prune_needs_them_all(action, proxy, sm):
    seed(sm, 250)
    # Long enough that the listings overlap at the proxy even on a loaded machine (at 0.1 s a
    # busy moment let one finish before the third started).
    proxy.faults.latency = 0.3
    run = action(inputs(250, **{"max-concurrency": "8"}), env=values(250))
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.json("unchanged")) == 250
    listed = [c.body for c in proxy.calls if c.operation == "ListSecrets"]
    # s0000-s0099, s0100-s0199, s0200-s0249: three prefixes, each a page, all at once.
    assert sorted(b["Filters"][0]["Values"][0] for b in listed) == [
        f"{PREFIX}s00",
        f"{PREFIX}s01",
        f"{PREFIX}s02",
    ]
    assert proxy.peak("ListSecrets") == 3
    assert calls_by_kind(proxy)["BatchGetSecretValue"] == 13

    # A prune needs everything under the name prefix: one listing, its pages one after another.
    proxy.reset()
    pruned = action(inputs(250, prune="true"), env=values(250))
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert len(pruned.json("unchanged")) == 250
    listed = [c.body for c in proxy.calls if c.operation == "ListSecrets"]
    assert [b["Filters"][0]["Values"][0] for b in listed] == [PREFIX] * 3
    assert proxy.peak("ListSecrets") == 1


@pytest.mark.parametrize(
    ("names", "prefixes"),
    [
        ([], ["p/"]),
        ([f"p/s{i:04d}" for i in range(100)], ["p/"]),  # a page's worth: one listing
        ([f"p/s{i:04d}" for i in range(101)], ["p/s00", "p/s01"]),
        ([f"p/s{i:04d}" for i in range(1000)], [f"p/s0{k}" for k in range(10)]),
        # Too thin a spread (a split would cost more than twice the pages): listed as one.
        ([f"p/{c}{i}" for c in "abcdefghijklmnopqrstuvwxyz" for i in range(5)], ["p/"]),
        # A name that is the prefix of the others: one listing shows them all.
        (["p/db", *[f"p/db{i:03d}" for i in range(150)]], ["p/db"]),
        # Names not under the prefix are not looked for here.
        (["q/x", *[f"p/s{i:04d}" for i in range(50)]], ["p/"]),
    ],
)
def test_listing_prefixes_cover_every_name_with_a_page_or_so_each(names, prefixes):
    from secrets_sync.state import listing_prefixes

    got = listing_prefixes("p/", names)
    assert got == prefixes
    for name in names:
        if name.startswith("p/"):
            assert any(name.startswith(p) for p in got), name


def test_create_run_reads_each_name_once_and_nothing_more(action, proxy, sm):
    # On a first sync the read by name finds nothing; no secret is then read again one by one.
    seed(sm, 5)
    run = action(inputs(45), env=values(45))
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.json("created")) == 40
    assert len(run.json("unchanged")) == 5
    kinds = calls_by_kind(proxy)
    assert kinds["BatchGetSecretValue"] == 3
    assert kinds["GetSecretValue"] == 0
    # Each name created once. moto itself can answer a create made beside others with a 500
    # ("dictionary changed size during iteration"), which is retried: count the names, and
    # the answers that created them.
    creates = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert len({c.secret_id for c in creates}) == 40
    assert sum(c.status == 200 for c in creates) == 40


def test_writes_reach_but_never_exceed_max_concurrency(action, proxy):
    proxy.faults.latency = 0.05
    created = action(inputs(40, **{"max-concurrency": "4"}), env=values(40))
    assert created.returncode == 0, created.stdout + created.stderr
    assert len(created.json("created")) == 40
    assert proxy.ops().count("CreateSecret") == 40
    assert proxy.peak("CreateSecret") == 4
    assert proxy.peak() == 4  # nothing else ran beside them either

    proxy.reset()
    updated = action(inputs(40, **{"max-concurrency": "6"}), env=values(40, "two"))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert len(updated.json("updated")) == 40
    assert proxy.ops().count("PutSecretValue") == 40
    assert proxy.peak("PutSecretValue") == 6
    assert proxy.peak() == 6


def test_moto_pages_list_secrets_like_aws(sm):
    # The pagination test below means something only if the fake pages as AWS does.
    seed(sm, 101)
    first = sm.list_secrets(MaxResults=100)
    assert len(first["SecretList"]) == 100
    assert first["NextToken"]
    second = sm.list_secrets(MaxResults=100, NextToken=first["NextToken"])
    assert len(second["SecretList"]) == 1
    assert not second.get("NextToken")


def test_a_thousand_secrets_page_and_batch_right(action, proxy, sm, realaws):
    n = 1000
    created = action(inputs(n, **{"max-concurrency": "16"}), env=values(n))
    assert created.returncode == 0, created.stdout + created.stderr
    assert len(created.json("created")) == n
    # Counted by answer: moto at times fails a call under this load, and botocore retries it.
    created_ok = [c for c in proxy.calls if c.operation == "CreateSecret" and c.status == 200]
    assert len(created_ok) == n
    # One listing per hundred names (below), even with nothing there yet: all side by side.
    assert proxy.ops().count("ListSecrets") == 10

    realaws.settle()  # minutes later: ListSecrets shows them (tests/test_sync.py: before that)
    proxy.reset()
    noop = action(inputs(n), env=values(n))
    assert noop.returncode == 0, noop.stdout + noop.stderr
    assert len(noop.json("unchanged")) == n
    assert noop.outputs["changed"] == "false"
    assert len(noop.json("arns")) == n
    kinds = calls_by_kind(proxy)
    assert set(kinds) <= {"sts", "ListSecrets", "BatchGetSecretValue"}, kinds
    assert kinds["sts"] <= 1
    assert kinds["ListSecrets"] == 10
    assert kinds["BatchGetSecretValue"] == 50
    pages = [c.body for c in proxy.calls if c.operation == "ListSecrets"]
    assert all(page["MaxResults"] == 100 for page in pages)
    # Ten hundreds of names, each listed under its own prefix, not one chain of ten pages
    # each waiting for the NextToken of the one before.
    assert sorted(page["Filters"][0]["Values"][0] for page in pages) == [
        f"{PREFIX}s0{k}" for k in range(10)
    ]
    assert all("NextToken" not in page for page in pages)
    read = [
        name
        for c in proxy.calls
        if c.operation == "BatchGetSecretValue"
        for name in c.body["SecretIdList"]
    ]
    assert sorted(read) == sorted(noop.json("arns"))  # each secret read once, by name


def plain_redact(masks: set[str], text: str) -> str:
    """The reference: every mask of 8 characters or more, longest first (ties in character
    order), replaced in turn."""
    for mask in sorted(masks, key=lambda m: (-len(m), m)):
        if len(mask) >= 8 and mask in text:
            text = text.replace(mask, REDACTED)
    return text


# Few letters and a "*", so that masks overlap, nest and meet the "***" replacements.
_pieces = st.text(alphabet="ab*\n", min_size=1, max_size=14)


@settings(max_examples=400, deadline=None)
@given(masks=st.lists(_pieces, max_size=8), glue=st.lists(_pieces, max_size=10))
def test_redaction_skips_only_masks_that_cannot_match(masks, glue):
    # The runner tries only the masks that can match (a per-line cost that made a run of 1,000
    # secrets quadratic); what it writes must be exactly what trying every mask would write.
    runner = Runner(io.StringIO(), in_actions=False)
    runner.add_masks(masks)
    text = "".join(mask + g for mask, g in zip(itertools.cycle(masks or [""]), glue))
    assert runner.redact(text) == plain_redact(runner._secrets, text)


# Masks of 8 to 40 characters: the text is screened every few characters (up to 8 apart), and
# each mask must be found at any offset from those screened positions.
_long_masks = st.lists(st.text(alphabet="ab*", min_size=8, max_size=40), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(masks=_long_masks, glue=st.lists(st.text(alphabet="ab*\n", max_size=9), max_size=10))
def test_redaction_screened_every_few_characters_misses_no_mask(masks, glue):
    runner = Runner(io.StringIO(), in_actions=False)
    text = "".join(mask + g for mask, g in zip(itertools.cycle(masks), glue))
    # Masks come in twice, a text redacted between: the index grows, and is built again where
    # a shorter mask makes the screen's stride shorter.
    runner.add_masks(masks[::2])
    assert runner.redact(text) == plain_redact(runner._secrets, text)
    runner.add_masks(masks[1::2])
    assert runner.redact(text) == plain_redact(runner._secrets, text)


@pytest.mark.parametrize("length", [8, 9, 15, 16, 40])
def test_a_mask_is_found_at_every_offset(length):
    mask = "".join(chr(ord("A") + i % 26) for i in range(length))
    runner = Runner(io.StringIO(), in_actions=False)
    runner.add_masks([mask])
    for offset in range(2 * length):
        assert runner.redact("x" * offset + mask + "y" * 3) == "x" * offset + "***yyy"
