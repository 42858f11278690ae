"""The documentation holds together: every relative link in README.md and docs/*.md reaches a
file of the repository, and every `#anchor` names a heading of the page it points into."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the text may hold inline code or brackets one level deep.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """Each line outside fenced code blocks, with its 1-based number."""
    lines, in_fence = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered (links by their text, code without
    backticks), lowercased, punctuation other than `-` and `_` dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, with GitHub's `-1`, `-2` suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """Every link target of a page's prose (not inside code), with its line number."""
    found = []
    for number, line in prose_lines(page.read_text()):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match.group(1)))
    return found


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
    assert broken(page, target) is None, f"{page.relative_to(ROOT)}:{number}: {target}"


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
    assert len((ROOT / "README.md").read_text().splitlines()) <= 420


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
        "# Title\n\n## Drift\n\n## Drift\n\n[ok](#drift-1) [bad](#drfit) `[code](#no)`\n\n"
        "```\n[fenced](#no)\n```\n[up](../README.md#x) [gone](gone.md) [out](../../x.md)\n"
        "[site](https://example.com/#x)\n"
    )
    (tmp_path / "README.md").write_text("# Readme\n\n## X\n")
    assert anchors(page) == {"title", "drift", "drift-1"}
    assert [t for _, t in links(page)] == [
        "#drift-1",
        "#drfit",
        "../README.md#x",
        "gone.md",
        "../../x.md",
        "https://example.com/#x",
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
