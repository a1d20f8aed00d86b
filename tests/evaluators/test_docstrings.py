"""The evaluators' docstrings: every example runs and gives what it shows, and every public metric
function says what it takes, what it gives and where its definition comes from."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import medarena.evaluators

MODULES = sorted(m.name for m in pkgutil.walk_packages(medarena.evaluators.__path__, "medarena.evaluators."))

PUBLIC_METRICS = {
    "segmentation": ["dice", "iou", "sensitivity", "precision", "specificity", "accuracy",
                     "volume_similarity", "volume_difference_ml", "hausdorff_distance", "assd", "masd",
                     "nsd", "lesion_f1", "panoptic_quality", "evaluate", "evaluate_chunked"],
    "detection": ["box_iou", "average_precision_coco", "froc_curve", "cpm"],
    "classification": ["auroc", "roc_curve", "binary_metrics"],
    "registration": ["target_registration_error", "jacobian_determinant", "sdlogj", "folding"],
    "fusion": ["entropy", "standard_deviation", "spatial_frequency", "average_gradient",
               "mutual_information", "qabf", "ssim_pair", "vif_pair", "fusion_mi", "fusion_ssim",
               "fusion_psnr", "fusion_rmse", "fusion_cc", "fusion_scd", "fusion_vif", "fusion_metrics"],
    "ranking": ["rank", "bootstrap_stability", "significance_matrix", "wilcoxon_greater", "kendall_tau_b"],
}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # objects defined in this module, with its globals
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


@pytest.mark.parametrize("family,function", [(f, n) for f, names in PUBLIC_METRICS.items() for n in names])
def test_public_metric_functions_are_documented(family, function):
    package = importlib.import_module(f"medarena.evaluators.{family}")
    assert function in package.__all__
    doc = inspect.getdoc(getattr(package, function))
    for section in ("Parameters\n----------", "Returns\n-------", "References\n----------", "Examples\n--------"):
        assert section in doc, f"{family}.{function}: no {section.splitlines()[0]} section"
    assert ">>> " in doc and "docs/metrics.md, section" in " ".join(doc.split())


def test_every_public_function_of_the_families_is_listed_above():
    for family, names in PUBLIC_METRICS.items():
        package = importlib.import_module(f"medarena.evaluators.{family}")
        functions = {n for n in package.__all__ if inspect.isfunction(getattr(package, n))}
        undocumented = functions - set(names) - _HELPERS[family]
        assert not undocumented, f"{family}: {sorted(undocumented)}"


# public functions that are not metrics (parsers, samplers, the dense-table forms of the ranking)
_HELPERS = {
    "segmentation": {"parse_metric"},
    "detection": {"parse_detections", "points_from_rows"},
    "classification": set(),
    "registration": {"sample_field", "warp_labels", "tre_summary", "pair_landmarks", "parse_landmarks_csv",
                     "parse_landmarks_json"},
    "fusion": {"to_gray"},
    "ranking": {"case_values", "compare_methods", "compare_values", "holm", "leaderboard", "pairwise_pvalues",
                "rank_min", "rank_values", "resampled_pvalues", "significance_values", "stability_values",
                "wilcoxon_greater_resampled"},
}
