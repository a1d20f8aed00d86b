"""The documentation builds in strict mode, its generated pages match the code, and a broken
reference fails the build."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")
FAMILIES = ("segmentation", "detection", "classification", "registration", "fusion", "ranking")


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    return subprocess.run([str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
                          cwd=config.parent, env=env, capture_output=True, text=True, timeout=600)


def reference_pages():
    spec = importlib.util.spec_from_file_location("reference_pages", REPO / "docs" / "reference_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_build_strictly_with_every_page_and_anchor(tmp_path):
    done = build(REPO / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in ("design", "metrics", "file-layouts", "definition", "cli"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    # docstrings and pages link to these anchors of the metric conventions
    anchors = set(re.findall(r'id="([^"]+)"', (tmp_path / "site" / "metrics" / "index.html").read_text()))
    assert set(FAMILIES) <= anchors


def test_the_generated_pages_match_the_code():
    assert reference_pages().stale_pages() == []


def test_a_changed_model_makes_its_page_stale(monkeypatch):
    from medarena.platform.challenges import PhaseDefinition

    pages = reference_pages()
    monkeypatch.setattr(PhaseDefinition.model_fields["limit_period_days"], "description", "changed")
    assert "| `limit_period_days` | number | `1.0` | changed; > 0 |" in pages.definition_page()
    assert pages.stale_pages() == ["definition.md"]


def test_every_definition_field_is_on_the_page():
    from medarena.platform.challenges import ChallengeDefinition, PhaseDefinition

    page = (REPO / "docs" / "definition.md").read_text()
    for model in (ChallengeDefinition, PhaseDefinition):
        for name in model.model_fields:
            assert f"| `{name}` |" in page, name
    assert "## Limits" in page and "| `wall_time_seconds` | number | `300` | > 0 |" in page


@pytest.mark.parametrize("broken", ["[a missing page](nowhere.md)", "[a missing anchor](metrics.md#no-such-family)"])
def test_a_broken_reference_fails_the_build(tmp_path, broken):
    shutil.copytree(REPO / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    config = (REPO / "mkdocs.yml").read_text()
    config = re.sub(r"\nhooks:\n(  - .*\n)+", "\n", config)  # the generated pages are tested above
    (tmp_path / "mkdocs.yml").write_text(config)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + f"\nSee {broken}.\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "index.md" in done.stderr and ("nowhere.md" in done.stderr or "no-such-family" in done.stderr)
