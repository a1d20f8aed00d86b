"""Challenge definitions: validation errors name the file and field; create/list/show."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform.challenges import DefinitionError, load_definition
from tests.platform.challenge_data import write_definition

runner = CliRunner()


def test_valid_definition_round_trips(tmp_path):
    parsed = load_definition(write_definition(tmp_path / "c.yaml"))
    assert parsed.slug == "toy"
    assert parsed.evaluation.prediction == {"mask": "segmentation"}  # inferred from the only output
    assert parsed.limits.wall_time_seconds == 4
    assert parsed.phases[0].opens.isoformat() == "2020-01-01T00:00:00"


@pytest.mark.parametrize("overrides, message", [
    ({"slug": "Not A Slug"}, "slug: String should match pattern"),
    ({"phases": [{"slug": "a", "opens": "2021-01-01", "closes": "2020-01-01"}]}, "closes must be later than opens"),
    ({"evaluation": {"task": "astrology"}}, "evaluation.task: unknown task 'astrology'"),
    ({"evaluation": {"task": "segmentation", "prediction": {"mask": "nope"}}},
     "evaluation.prediction.mask: no output socket 'nope'"),
    ({"evaluation": {"task": "segmentation", "settings": {"labelz": {}}}}, "evaluation.settings: labelz"),
    ({"limits": {"memory_mb": -1}}, "limits.memory_mb"),
    ({"ranking": {"method": "coin-flip", "metrics": [{"metric": "dice"}]}}, "ranking: method"),
    ({"ranking": {"metrics": [{"metric": "nsd@2"}]}}, "ranking.metrics.0: 'nsd@2' is not among the metrics"),
])
def test_bad_definitions_name_the_file_and_field(tmp_path, overrides, message):
    path = write_definition(tmp_path / "bad.yaml", **overrides)
    with pytest.raises(DefinitionError) as exc:
        load_definition(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("slug: toy\ntitle: [unclosed\n")
    with pytest.raises(DefinitionError, match=r"broken.yaml: not valid YAML \(line 3\)"):
        load_definition(path)


def test_cli_create_list_show_and_clean_failure(home, tmp_path):
    path = write_definition(tmp_path / "c.yaml")
    result = runner.invoke(app, ["challenge", "create", str(path)])
    assert result.exit_code == 0, result.output
    assert "created challenge toy" in result.output
    assert "updated challenge toy" in runner.invoke(app, ["challenge", "create", str(path)]).output
    listing = runner.invoke(app, ["challenge", "list"])
    assert "toy" in listing.output and "segmentation" in listing.output
    shown = json.loads(runner.invoke(app, ["challenge", "show", "toy"]).output)
    assert shown["interface"]["inputs"][0]["slug"] == "scan"

    bad = write_definition(tmp_path / "bad.yaml", title=None)
    result = runner.invoke(app, ["challenge", "create", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml: title" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["challenge", "show", "nope"])
    assert missing.exit_code == 1 and "no challenge 'nope'" in missing.output

