"""Algorithm mode: reads /input/inputs.json by its `socket` key (as grand-challenge's own
examples do today), reports what it finds about its runtime in /output/report.json, and writes
a probability read from /opt/ml/model/weights.json (0.5 without a model) to
/output/probability.json.

Evaluation mode (when /input/predictions.json exists): reads each job's probability from
/input/<pk>/output/probability.json, compares it with /opt/ml/input/data/ground_truth/truth.json
({image name: label}), and writes /output/metrics.json with per-case rows (by job pk) and
aggregates. /opt/ml/input/data/ground_truth/mode.txt makes it misbehave on purpose:
exit, nometrics, notjson, nan, deep, link.
"""

import json
import os
from pathlib import Path

INPUT, OUTPUT = Path("/input"), Path("/output")
GROUND_TRUTH = Path("/opt/ml/input/data/ground_truth")


def writable(folder):
    try:
        probe = Path(folder) / ".probe"
        probe.write_text("x")
        probe.unlink()
        return True
    except OSError:
        return False


def algorithm():
    entries = json.loads((INPUT / "inputs.json").read_text())
    found = {}
    for entry in entries:
        socket = entry["socket"]
        assert entry["interface"] == socket
        if socket["super_kind"] == "Image":
            files = sorted(p.name for p in (INPUT / socket["relative_path"]).iterdir())
            found[socket["slug"]] = {"files": files, "image": entry["image"]}
        else:
            found[socket["slug"]] = {"value": entry["value"]}
    model = Path("/opt/ml/model")
    weights = model / "weights.json"
    report = {
        "keys": [sorted(entry) for entry in entries],
        "sockets": [entry["socket"] for entry in entries],
        "found": found,
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME"),
        "uid": os.getuid(),
        "writable": {d: writable(d) for d in ("/tmp", "/opt/ml/checkpoints", "/opt/ml/output/data",
                                              "/opt/ml/model", os.environ.get("HOME", "/"))},
        "model_files": sorted(str(p.relative_to(model)) for p in model.rglob("*")) if model.is_dir() else None,
        "ground_truth_visible": GROUND_TRUTH.exists(),
    }
    probability = json.loads(weights.read_text())["probability"] if weights.is_file() else 0.5
    (OUTPUT / "report.json").write_text(json.dumps(report))
    (OUTPUT / "probability.json").write_text(json.dumps(probability))


def evaluation():
    mode = (GROUND_TRUTH / "mode.txt").read_text().strip() if (GROUND_TRUTH / "mode.txt").exists() else "ok"
    print(f"evaluation mode {mode}")
    if mode == "exit":
        raise SystemExit("the evaluation broke on purpose")
    if mode == "nometrics":
        return
    if mode == "notjson":
        (OUTPUT / "metrics.json").write_text("{not json")
        return
    if mode == "link":
        os.symlink("/etc/passwd", OUTPUT / "metrics.json")
        return
    truth = json.loads((GROUND_TRUTH / "truth.json").read_text())
    predictions = json.loads((INPUT / "predictions.json").read_text())
    cases = []
    for job in predictions:
        name = next(v["image"]["name"] for v in job["inputs"] if v["socket"]["super_kind"] == "Image")
        value = json.loads((INPUT / job["pk"] / "output" / "probability.json").read_text())
        cases.append({"pk": job["pk"], "abs_error": abs(value - truth[name]), "probability": value})
    errors = [c["abs_error"] for c in cases]
    mean = sum(errors) / len(errors)
    metrics = {"cases": cases, "aggregates": {"abs_error": {"mean": mean, "max": max(errors)}},
               "n": len(cases), "predictions_keys": sorted(predictions[0]) if predictions else []}
    if mode == "nan":
        metrics["aggregates"]["abs_error"]["mean"] = float("nan")
    if mode == "deep":
        for _ in range(100):
            metrics = {"deeper": metrics}
    (OUTPUT / "metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    evaluation() if (INPUT / "predictions.json").exists() else algorithm()
