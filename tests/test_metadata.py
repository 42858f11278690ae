"""Metadata held against the code: action.yml, the CLI, the README tables, and the examples in
examples/, README.md and docs/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from secrets_sync.cli import build_parser
from secrets_sync.mapping import load_mapping, schema
from secrets_sync.settings import INPUTS
from secrets_sync.summary import OUTPUTS

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
README = (ROOT / "README.md").read_text()
# Where mappings are shown: the README and every page of docs/.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_table(heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under a heading: first cell (unquoted) to all cells."""
    section = README.split(f"\n{heading}\n", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.lstrip("\n").split("\n\n", 1)[0].splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    rows.pop("Input", None)
    rows.pop("Output", None)
    return rows


def test_action_yml_inputs_match_settings():
    assert list(ACTION["inputs"]) == [i.name for i in INPUTS]
    for spec in INPUTS:
        declared = ACTION["inputs"][spec.name]
        assert declared["description"] == spec.description
        assert declared.get("default") == spec.default, spec.name
        assert declared["required"] is False


def test_action_yml_outputs_match_summary():
    assert {k: v["description"] for k, v in ACTION["outputs"].items()} == dict(OUTPUTS)


def test_action_yml_runs_the_dockerfile():
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert ACTION["branding"]["icon"]
    assert ACTION["branding"]["color"]


def test_every_input_is_a_cli_flag():
    flags = {a.dest: a.option_strings for a in build_parser()._actions}
    for spec in INPUTS:
        assert flags[spec.name] == [f"--{spec.name}"]


def test_readme_documents_every_input_with_its_default():
    rows = readme_table("### Inputs")
    assert list(rows) == [i.name for i in INPUTS]
    for spec in INPUTS:
        default = rows[spec.name][1].strip("`")
        expected = spec.default if spec.default not in (None, "") else "—"
        if spec.default == "":
            expected = '""'
        assert default == expected, spec.name


def test_readme_documents_every_output():
    assert list(readme_table("### Outputs")) == [name for name, _ in OUTPUTS]


def mappings_in_examples():
    """Every mapping shown in the examples and the docs: inline `secrets:` and mapping files."""
    found = []
    for path in sorted((ROOT / "examples").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        if "jobs" not in doc:
            found.append(pytest.param(path.read_text(), id=path.name))
            continue
        for job_name, job in doc["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                if "secrets" in step.get("with", {}):
                    found.append(
                        pytest.param(step["with"]["secrets"], id=f"{path.name}:{job_name}:{i}")
                    )
    for page in DOCS:
        found.extend(mappings_in_page(page))
    return found


def mappings_in_page(page: Path) -> list[object]:
    """The mappings of one Markdown page's YAML blocks: mapping files shown whole, the
    `secrets:` of workflow steps, and `with:` excerpts."""
    found = []
    name = page.relative_to(ROOT)
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
        if block.startswith("# .github/secrets-sync.yml\n"):  # a mapping file, shown whole
            found.append(pytest.param(block, id=f"{name}:{i}"))
            continue
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError:
            continue  # a fragment with `...` elisions, not a whole workflow
        steps = (
            [s for job in (doc or {}).get("jobs", {}).values() for s in job.get("steps", [])]
            if isinstance(doc, dict)
            else []
        )
        for step in steps:
            if "secrets" in step.get("with", {}):
                found.append(pytest.param(step["with"]["secrets"], id=f"{name}:{i}"))
        if isinstance(doc, dict) and isinstance(doc.get("secrets"), str):  # a `with:` excerpt
            found.append(pytest.param(doc["secrets"], id=f"{name}:{i}:with"))
    return found


@pytest.mark.parametrize("text", mappings_in_examples())
def test_examples_validate_against_the_schema(text):
    validator = jsonschema.Draft202012Validator(schema())
    data = yaml.safe_load(text)
    assert not list(validator.iter_errors(json.loads(json.dumps(data, default=str))))
    assert load_mapping(text, "example").specs


def test_the_docs_still_show_mappings_the_schema_checks():
    # A reworded block (no `# .github/secrets-sync.yml` first line, a workflow that no longer
    # parses) would drop out of the check above silently; these pages must keep theirs.
    shown = {str(p.relative_to(ROOT)): len(mappings_in_page(p)) for p in DOCS}
    assert shown["README.md"] >= 1
    assert shown["docs/mapping.md"] >= 3
    assert shown["docs/eso.md"] >= 1


def test_schema_is_valid_2020_12():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
