"""Image fusion: the fused image F of two sources A and B, scored without a reference.

What a user imports: the twelve metric functions (their definitions, and where they depart from
VIFB's code, are in :mod:`medarena.evaluators.fusion._metrics` and docs/metrics.md, section
Fusion), :func:`fusion_metrics` (several at once) and the task the platform uses (:data:`TASK`,
:class:`FusionSettings`).
"""

from medarena.evaluators.fusion._metrics import (
    METRICS,
    average_gradient,
    entropy,
    fusion_cc,
    fusion_metrics,
    fusion_mi,
    fusion_psnr,
    fusion_rmse,
    fusion_scd,
    fusion_ssim,
    fusion_vif,
    mutual_information,
    qabf,
    spatial_frequency,
    ssim_pair,
    standard_deviation,
    vif_pair,
)
from medarena.evaluators.fusion._task import TASK, FusionSettings, FusionTask, to_gray

__all__ = [
    "METRICS", "TASK", "FusionSettings", "FusionTask", "average_gradient", "entropy", "fusion_cc",
    "fusion_metrics", "fusion_mi", "fusion_psnr", "fusion_rmse", "fusion_scd", "fusion_ssim",
    "fusion_vif", "mutual_information", "qabf", "spatial_frequency", "ssim_pair", "standard_deviation",
    "to_gray", "vif_pair",
]
