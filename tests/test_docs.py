"""The documentation holds together: every relative link in README.md and docs/*.md reaches a
file of the repository, and every `#anchor` names a heading of the page it points into."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from secrets_sync import iam

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the text may hold inline code or brackets one level deep.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(text: str) -> str:
    """The text with the lines of fenced code blocks blanked, so line numbers still hold."""
    lines, in_fence = [], False
    for line in text.splitlines():
        fence = bool(FENCE.match(line.lstrip()))
        lines.append("" if in_fence or fence else line)
        in_fence ^= fence
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered (links by their text, code without
    backticks), lowercased, punctuation other than `-` and `_` dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, with GitHub's `-1`, `-2` suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text()).splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """Every link target of a page's prose (not inside code), with the line it starts on. A
    link's text may run over a line break."""
    text = INLINE_CODE.sub("", prose(page.read_text()))
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(text)]


def relative_links() -> list[object]:
    return [
        pytest.param(page, number, target, id=f"{page.relative_to(ROOT)}:{number}:{target}")
        for page in PAGES
        for number, target in links(page)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)  # https:, mailto:, ...
    ]


def broken(page: Path, target: str, root: Path = ROOT) -> str | None:
    """Why a relative link of a page does not resolve, or None when it does."""
    path, _, fragment = target.partition("#")
    dest = (page.parent / unquote(path)).resolve() if path else page
    if not dest.is_relative_to(root):
        return "points outside the repository"
    if not dest.exists():
        return "no such file"
    if fragment and dest.suffix != ".md":
        return "an anchor into a file that is not Markdown"
    if fragment and fragment not in anchors(dest):
        return f"no heading of {dest.name} has the anchor #{fragment}"
    return None


@pytest.mark.parametrize(("page", "number", "target"), relative_links())
def test_relative_link_resolves(page: Path, number: int, target: str) -> None:
    problem = broken(page, target)
    assert problem is None, f"{page.relative_to(ROOT)}:{number}: {target}: {problem}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in links(ROOT / "README.md")
        if target.startswith("docs/")
    }
    pages = set(PAGES[1:])
    assert pages, "docs/ holds no page"
    assert pages <= linked, sorted(p.name for p in pages - linked)


def test_readme_stays_a_few_hundred_lines() -> None:
    # STYLE.md habit 14: the README is for the newcomer; depth belongs in docs/.
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 420, f"README.md has {lines} lines: move the depth to a page of docs/"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Selecting secrets: `only`", "selecting-secrets-only"),
        ("Values: by name through `env:`, or `values`", "values-by-name-through-env-or-values"),
        ("Sizing `max-concurrency`", "sizing-max-concurrency"),
        ("Trust policy: one repository, one branch", "trust-policy-one-repository-one-branch"),
        ("[`sync.yml`](../examples/sync.yml) and the deploy", "syncyml-and-the-deploy"),
        ("Role_chaining (STS)", "role_chaining-sts"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_the_checker_finds_what_is_broken(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "# Title\n\n## Drift\n\n## Drift\n\n[ok](#drift-1) [bad\nacross](#drfit) `[code](#no)`\n\n"
        "```\n[fenced](#no)\n```\n[up](../README.md#x) [gone](gone.md) [out](../../x.md)\n"
        "[site](https://example.com/#x)\n"
    )
    (tmp_path / "README.md").write_text("# Readme\n\n## X\n")
    assert anchors(page) == {"title", "drift", "drift-1"}
    assert links(page) == [
        (7, "#drift-1"),
        (7, "#drfit"),  # its text runs on to line 8
        (13, "../README.md#x"),
        (13, "gone.md"),
        (13, "../../x.md"),
        (14, "https://example.com/#x"),
    ]
    verdicts = {t: broken(page, t, tmp_path) for t in ["#drift-1", "#drfit", "../README.md#x"]}
    assert verdicts == {
        "#drift-1": None,
        "#drfit": "no heading of page.md has the anchor #drfit",
        "../README.md#x": None,
    }
    assert broken(page, "gone.md", tmp_path) == "no such file"
    assert broken(page, "../../x.md", tmp_path) == "points outside the repository"
    assert broken(page, "../README.md#y", tmp_path) == "no heading of README.md has the anchor #y"


def json_block_after(page: Path, marker: str) -> str:
    text = page.read_text()
    match = re.compile(r"```json\n(.*?)```", re.S).search(text, text.index(marker))
    assert match, f"no JSON block after {marker!r} in {page.name}"
    return match.group(1)


def printed_policy(*args: str) -> dict[str, object]:
    out = io.StringIO()
    common = ["--name-prefix", "lornu-ai/", "--repository", "lornu-ai/app"]
    common += ["--account-id", "123456789012", "--region", "us-east-1"]
    common += ["--owner-id", "123456", "--repository-id", "789012"]  # the IDs the docs show
    assert iam.main([*common, *args], out, io.StringIO(), {}) == 0
    return json.loads(out.getvalue())


def test_the_policies_shown_are_what_iam_policy_prints() -> None:
    # The policies a user copies from the docs must be the ones the action is tested against.
    page = ROOT / "docs" / "credentials.md"
    shown = json.loads(json_block_after(page, "## Permissions policy"))
    assert shown == printed_policy("--only", "permissions")
    shown = json.loads(json_block_after(page, "## Trust policy: one repository, one branch"))
    assert shown == printed_policy("--only", "trust", "--branch", "main")
    fragment = json_block_after(page, "## Trust policy: one repository, one environment")
    trust = printed_policy("--only", "trust", "--environment", "production")
    assert json.loads("{" + fragment + "}")["Condition"] == trust["Statement"][0]["Condition"]
    key = "arn:aws:kms:us-east-1:123456789012:key/KEY-ID"
    shown = json.loads(json_block_after(page, "**KMS.**"))
    assert shown == printed_policy("--only", "permissions", "--kms-key-arn", key)["Statement"][-1]
