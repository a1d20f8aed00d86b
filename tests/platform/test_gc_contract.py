"""grand-challenge.org's algorithm contract, key by key, and a real grand-challenge-style
container (reading inputs.json by its `socket` key) run through `medarena try`."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from medarena.cli import app
from medarena.evaluators.image import Image
from medarena.platform import organizer
from medarena.platform.challenges import DefinitionError, parse_definition
from medarena.platform.contract import Socket, write_inputs
from tests.platform import gc_phase
from tests.platform.challenge_data import definition as toy_definition

# The keys grand-challenge writes, read from its code at commit 4e38c78ba1ff7b7329a5d71ceaa71ff7eacaf053
# of DIAGNijmegen/rse-grand-challenge:
# app/grandchallenge/components/serializers.py, ComponentInterfaceSerializer.Meta.fields
GC_SOCKET_KEYS = {"title", "description", "slug", "kind", "pk", "default_value", "super_kind", "relative_path",
                  "overlay_segments", "look_up_table"}
# ComponentInterfaceValueSerializer.Meta.fields
GC_VALUE_KEYS = {"socket", "interface", "value", "file", "image", "pk"}
# SimpleImageSerializer.Meta.fields
GC_IMAGE_KEYS = {"pk", "name"}
# app/grandchallenge/algorithms/serializers.py, JobSerializer.Meta.fields (predictions.json)
GC_JOB_KEYS = {"pk", "url", "api_url", "algorithm_image", "inputs", "outputs", "status", "hanging_protocol",
               "optional_hanging_protocols", "view_content", "exec_duration", "invoke_duration"}

runner = CliRunner()


def sockets():
    return [Socket(slug="scan", kind="Image", relative_path="images/scan", title="CT scan"),
            Socket(slug="age", kind="Integer", relative_path="age.json"),
            Socket(slug="mask", kind="Segmentation", relative_path="images/mask",
                   overlay_segments=[{"name": "liver", "visible": True, "voxel_value": 1}])]


def values():
    image = Image(array=np.zeros((2, 3, 4), np.int16), spacing=(2.0, 1.0, 0.5))
    return {"scan": image, "age": 63, "mask": Image(array=np.ones((2, 3, 4), np.uint8), spacing=(2.0, 1.0, 0.5))}


def test_inputs_json_has_every_key_grand_challenges_serializers_write(tmp_path):
    entries = write_inputs(tmp_path / "in", sockets(), values(), case="c7", scope="ch/ph")
    assert json.loads((tmp_path / "in" / "inputs.json").read_text()) == entries
    for entry in entries:
        assert set(entry) == GC_VALUE_KEYS
        assert set(entry["socket"]) == GC_SOCKET_KEYS
        assert entry["interface"] == entry["socket"]
        assert isinstance(entry["pk"], int) and isinstance(entry["socket"]["pk"], int)
        assert entry["file"] is None  # values are inline; files (PDF, CSV...) are not supported
    by_slug = {e["socket"]["slug"]: e for e in entries}
    # values first, then images, each by slug (grand-challenge's sort_civs)
    assert [e["socket"]["slug"] for e in entries] == ["age", "mask", "scan"]
    assert by_slug["age"]["value"] == 63 and by_slug["age"]["image"] is None
    assert (by_slug["age"]["socket"]["kind"], by_slug["age"]["socket"]["super_kind"]) == ("Integer", "Value")
    assert by_slug["scan"]["socket"]["title"] == "CT scan"
    assert (by_slug["mask"]["socket"]["kind"], by_slug["mask"]["socket"]["super_kind"]) == ("Segmentation", "Image")
    assert by_slug["mask"]["socket"]["overlay_segments"] == [{"name": "liver", "visible": True, "voxel_value": 1}]
    for slug in ("scan", "mask"):
        image = by_slug[slug]["image"]
        assert set(image) == GC_IMAGE_KEYS and image["name"] == "c7.mha"
        uuid.UUID(image["pk"])
        files = [p.name for p in (tmp_path / "in" / "images" / slug).iterdir()]
        assert files == [f"{image['pk']}.mha"]  # /input/<relative_path>/<image pk>.mha
        assert by_slug[slug]["value"] is None


def test_ids_are_stable_per_case_and_differ_between_cases(tmp_path):
    first = write_inputs(tmp_path / "a", sockets(), values(), case="c7", scope="ch/ph")
    again = write_inputs(tmp_path / "b", sockets(), values(), case="c7", scope="ch/ph")
    other = write_inputs(tmp_path / "c", sockets(), values(), case="c8", scope="ch/ph")
    assert first == again
    assert {e["pk"] for e in first}.isdisjoint({e["pk"] for e in other})
    assert first[2]["image"]["pk"] != other[2]["image"]["pk"]


@pytest.mark.parametrize(("gc", "kind"), [
    ("Image", "image"), ("Segmentation", "segmentation"), ("Heat Map", "heat-map"),
    ("Displacement field", "displacement-field"), ("Multiple points", "points"),
    ("Multiple 2D bounding boxes", "boxes"), ("Anything", "json"), ("Float", "probability"),
    ("Integer", "json"), ("Bool", "json"), ("String", "json")])
def test_grand_challenge_kind_names_map_onto_medarena_kinds_and_back(gc, kind):
    path = "images/x" if kind in ("image", "segmentation", "heat-map", "displacement-field") else "x.json"
    socket = Socket(slug="x", kind=gc, relative_path=path)
    assert socket.kind == kind and socket.interface()["kind"] == gc
    assert Socket.model_validate(socket.model_dump()) == socket  # a stored definition reads back the same


def test_medarena_kind_names_show_grand_challenges_names():
    assert Socket(slug="x", kind="heat-map", relative_path="images/x").interface()["kind"] == "Heat Map"
    assert Socket(slug="x", kind="boxes", relative_path="x.json").interface()["kind"] == "Multiple 2D bounding boxes"


@pytest.mark.parametrize(("kind", "message"), [
    ("PDF file", "grand-challenge's kind 'PDF file' is not supported"),
    ("DICOM Image Set", "not supported"),
    ("Heatmap", "Input should be 'image'")])
def test_unsupported_or_unknown_kinds_are_refused_naming_the_field(kind, message):
    data = toy_definition()
    data["interface"]["outputs"].append({"slug": "x", "kind": kind, "relative_path": "images/x"})
    with pytest.raises(DefinitionError, match="interface.outputs.1") as error:
        parse_definition(data)
    assert message in str(error.value)


@pytest.mark.podman
def test_a_grand_challenge_algorithm_reading_the_socket_key_runs_through_try(example_images, home, tmp_path):
    gc_phase.build_probe(example_images)
    organizer.create_challenge(home, gc_phase.definition(tmp_path))
    organizer.ingest_phase(home, "gcprobe", "test", gc_phase.write_cases(tmp_path / "source"))
    result = runner.invoke(app, ["try", gc_phase.PROBE, "-c", "gcprobe", "-p", "test", "--case", "case1"])
    assert result.exit_code == 0, result.output
    # the report as the container wrote it: the case run as `try` runs it, predictions kept in memory
    from medarena.platform import casejob, scheduler

    job = casejob.CaseJob(case="case1", image=gc_phase.PROBE, definition=_stored_definition(home),
                          inputs_url=scheduler.inputs_url(home, "gcprobe", "test"), references_url="",
                          predictions_url=None, scratch=str(home.scratch), scope="gcprobe/test")
    outcome = casejob.run_algorithm(job)
    assert outcome.state == "evaluating", outcome
    report, probability = outcome.predictions["report"], outcome.predictions["probability"]
    assert probability == 0.5  # no model was given
    assert report["keys"] == [sorted(GC_VALUE_KEYS)]
    assert set(report["sockets"][0]) == GC_SOCKET_KEYS and report["sockets"][0]["kind"] == "Image"
    image = report["found"]["scan"]["image"]
    assert image["name"] == "case1.mha" and report["found"]["scan"]["files"] == [f"{image['pk']}.mha"]
    assert report["cwd"] == "/opt/app" and report["home"] == "/home/user" and report["uid"] == 1000
    assert report["writable"] == {"/tmp": True, "/opt/ml/checkpoints": True, "/opt/ml/output/data": True,
                                  "/opt/ml/model": False, "/home/user": False}
    assert report["model_files"] is None and report["ground_truth_visible"] is False


def _stored_definition(settings):
    data = organizer.show_challenge(settings, "gcprobe")
    data.pop("cases")
    return data
