"""The cluster configurations in infra/cluster/ are valid for the tools that read them: the Ray
cluster launcher's config against the schema Ray itself ships (ray/autoscaler/ray-schema.json,
plus the launcher's own checks after its defaults are filled in), the KubeRay manifest against
the RayCluster CRD's openAPIV3Schema (KubeRay v1.7.0, vendored in tests/data/kuberay), strictly:
an unknown field is an error, as with ``kubectl apply --validate=strict``."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RAY_UP = REPO / "infra" / "cluster" / "ray-up.yaml"
KUBERAY = REPO / "infra" / "cluster" / "kuberay-raycluster.yaml"
CRD = REPO / "tests" / "data" / "kuberay" / "ray.io_rayclusters.yaml.gz"
CRD_BLOB = "ff0be58ada3bd457605eff1f258c16df21e61e21"  # kuberay v1.7.0, see tests/data/kuberay/README.md


# ---------------------------------------------------------------- Ray cluster launcher

def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def ray_config() -> dict:
    return yaml.safe_load(RAY_UP.read_text())


def test_ray_up_config_is_valid_for_the_cluster_launcher():
    config = ray_config()
    jsonschema.validate(config, ray_schema())
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs before it starts anything


def test_ray_schema_check_can_fail():
    config = ray_config()
    config["available_node_types"]["gpu"]["resources"]["GPU"] = "one"
    with pytest.raises(jsonschema.ValidationError, match="'one' is not of type 'integer'"):
        jsonschema.validate(config, ray_schema())
    config = ray_config()
    config["setup_comands"] = ["true"]  # a misspelt key
    with pytest.raises(jsonschema.ValidationError, match="'setup_comands' was unexpected"):
        jsonschema.validate(config, ray_schema())


def test_ray_up_has_a_cpu_and_a_gpu_node_type_with_podman_everywhere():
    config = ray_config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head runs no cases"
    assert types["cpu"]["resources"].get("GPU", 0) == 0 and types["cpu"]["resources"]["CPU"] > 0
    assert types["gpu"]["resources"]["GPU"] >= 1
    common = " ".join(config["setup_commands"])
    gpu = " ".join(types["gpu"]["worker_setup_commands"])  # replaces the common list on GPU nodes
    for commands in (common, gpu):
        assert "podman" in commands and "runc" in commands and "pip install" in commands
    assert "nvidia-ctk cdi generate" in gpu and "nvidia-ctk" not in common
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--head" in head_start and "medarena worker" in head_start
    assert "medarena worker" not in " ".join(config["worker_start_ray_commands"])


# ---------------------------------------------------------------- KubeRay

def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def strict(schema):
    """The structural schema with unknown fields refused (Kubernetes prunes them silently unless
    validation is strict), except where the schema keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def raycluster_schema() -> jsonschema.Draft4Validator:
    data = gzip.decompress(CRD.read_bytes())
    assert git_blob_id(data) == CRD_BLOB, "the vendored CRD is not the one recorded in its README"
    crd = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 0.9 MB of YAML
    assert crd["spec"]["names"]["kind"] == "RayCluster"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    # OpenAPI 3.0 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*) that validation ignores
    return jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))


def manifest() -> dict:
    return yaml.safe_load(KUBERAY.read_text())


def test_kuberay_manifest_is_a_valid_raycluster(raycluster_schema):
    doc = manifest()
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    raycluster_schema.validate({"spec": doc["spec"]})


@pytest.mark.parametrize(("change", "message"), [("unknown_field", "'envFromm' was unexpected"),
                                                 ("bad_replicas", "'two' is not of type 'integer'"),
                                                 ("no_containers", "'containers' is a required property")])
def test_kuberay_schema_check_can_fail(raycluster_schema, change, message):
    doc = manifest()
    worker = doc["spec"]["workerGroupSpecs"][0]
    if change == "unknown_field":
        worker["template"]["spec"]["containers"][0]["envFromm"] = []
    elif change == "bad_replicas":
        worker["replicas"] = "two"
    else:
        del worker["template"]["spec"]["containers"]
    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        raycluster_schema.validate({"spec": doc["spec"]})


def test_kuberay_has_a_gpu_worker_group_running_podman_with_settings_from_a_secret():
    spec = manifest()["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    head_containers = spec["headGroupSpec"]["template"]["spec"]["containers"]
    assert any(c.get("command") == ["medarena", "worker"] for c in head_containers)
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    for group in groups.values():
        container = group["template"]["spec"]["containers"][0]
        assert container["securityContext"]["privileged"] is True  # podman in the pod
        assert {"mountPath": "/var/lib/containers", "name": "containers"} in container["volumeMounts"]
    for container in [*head_containers, *(g["template"]["spec"]["containers"][0] for g in groups.values())]:
        assert {"secretRef": {"name": "medarena-settings"}} in container["envFrom"]


def test_the_configs_name_only_settings_that_medarena_reads():
    source = "\n".join(p.read_text() for p in (REPO / "medarena").rglob("*.py"))
    for path in (RAY_UP, KUBERAY):
        for name in set(re.findall(r"\bMEDARENA_[A-Z_]+\b", path.read_text())) - {"MEDARENA_IMAGE"}:
            assert f'"{name}"' in source, f"{path.name} names {name}, which medarena never reads"
