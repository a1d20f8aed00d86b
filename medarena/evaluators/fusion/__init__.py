"""Image fusion: the fused image F of sources A and B, scored without a reference (2D, or slice by
slice for 3D).

What a user imports: the twelve metric functions below, :func:`fusion_metrics` (several at once)
and the task the platform uses (:data:`TASK`, :class:`FusionSettings`).

The benchmark followed is VIFB (Zhang et al., "VIFB: a visible and infrared image fusion
benchmark", CVPR Workshops 2020), whose MATLAB code (github.com/xingchenzhang/VIFB, ``metrics/``,
checked at commit 22b2ea9d91499cc5962d9bdcae9c290270f0fade) defines nine of the twelve metrics;
CC, SCD and VIF are not in VIFB and follow their original papers. Where medarena departs from
VIFB's code, the entry below says how and why. Definitions in full: docs/metrics.md, section Fusion.

Shared choices:

- **Intensity scale**: every metric sees gray levels on [0, 255] (VIFB works on 8-bit images):
  the data range L of PSNR and SSIM is 255; EN and MI histogram 256 levels of width 1. Other inputs
  are mapped to that scale once for all three images by the task setting ``intensity_range``.
- **Colour**: an RGB image is converted to gray first, 0.2989 R + 0.5870 G + 0.1140 B (MATLAB's
  ``rgb2gray``). *VIFB* scores an RGB fused image band by band and averages the bands; one gray
  image is what the gray sources of a medical fusion task are compared with.
- **Two sources**: MI, SSIM, SCD and VIF add the A and B terms; CC and RMSE average them; PSNR
  uses the mean of the two MSEs (as VIFB does for MI, SSIM, RMSE and PSNR).

The twelve metrics (``fusion_metrics`` names):

- ``en`` entropy −Σ p_l log2 p_l of F's 256-level histogram, in bits. *VIFB* takes the level
  ``floor(F)``; medarena rounds to the nearest level (the same on 8-bit images; on mapped
  intensities flooring would shift every value down by half a level on average).
- ``sd`` standard deviation of F, population (divided by M N), as VIFB's ``metricsVariance``.
- ``sf`` spatial frequency sqrt(RF² + CF²), RF² and CF² the mean squared differences of
  horizontal and vertical neighbours. *VIFB* divides both sums by M N; medarena divides each by
  the number of differences, M (N−1) and (M−1) N, so a ramp of slope 1 has SF = 1 whatever the
  image size (VIFB: sqrt((N−1)/N) for a horizontal ramp). VIFB also reads an RGB F as one image
  of 3 N columns.
- ``ag`` average gradient: the mean over the M N pixels of sqrt((∂_x F² + ∂_y F²) / 2), central
  differences inside and one-sided at the border (MATLAB's ``gradient``, ``numpy.gradient``).
  *VIFB* divides the sum over the M N pixels by (M−1)(N−1); medarena takes the mean over the
  pixels it sums, so a ramp of slope 1 has AG = 1/√2 whatever its size (VIFB's value is
  M N / ((M−1)(N−1)) times medarena's).
- ``mi`` MI(A, F) + MI(B, F) over 256 × 256-level joint histograms, in **bits** (log2).
  *VIFB* uses the natural log (nats) and first stretches each image by itself to its own
  [min, max] before binning it into 256 levels; medarena bins the gray levels as they are (the
  task maps all three images with one ``intensity_range``, so the same intensity falls in the same
  bin in A, B and F) and reports bits, the unit of EN and of Qu et al. (2002). On 8-bit images that
  each span 0..255, VIFB's MI = medarena's MI × ln 2.
- ``qabf`` Xydeas–Petrović Q^AB/F (Electronics Letters 36:308, 2000) with Sobel gradients (zero
  padding): see :func:`qabf`. *VIFB* sets the orientation α = π/2 wherever s_x = 0, so a flat
  pixel (s_x = s_y = 0) looks like a vertical edge and s_y < 0 gets +π/2; medarena takes the limit
  of atan(s_y / s_x), ±π/2 by the sign of s_y and 0 on a flat pixel, and compares orientations
  modulo π (an edge and its reverse are one edge; the paper's 1 − |Δα|/(π/2) for |Δα| ≤ π/2).
  VIFB's relative strength is g_F (not 1) where g_A = g_F, a slip in its code; medarena uses the
  paper's ratio (1, and 0 where either strength is 0).
- ``ssim`` SSIM(A, F) + SSIM(B, F), 11 × 11 Gaussian window, σ = 1.5, K = (0.01, 0.03), L = 255,
  the mean over the positions where the window fits: as VIFB's ``metricsSsim`` (and Wang et al.'s
  reference code, scikit-image 0.26.0 and sewar 0.4.10, checked in the tests).
- ``psnr`` 10 log10(L² / MSE), MSE = (MSE(A, F) + MSE(B, F)) / 2 with the standard
  MSE = mean((X − F)²). *VIFB*'s ``mse`` is sqrt(Σ(X − F)²) / (M N), a norm divided by the
  pixel count that shrinks as 1/sqrt(M N) with the image size and is no mean squared error, and
  its PSNR is 20 log10(255 / sqrt of the mean of those); medarena's equals scikit-image's and
  sewar's PSNR for one source.
- ``rmse`` (sqrt(MSE(A, F)) + sqrt(MSE(B, F))) / 2 with the standard MSE; *VIFB* averages its
  ``mse`` above instead (the same departure and reason as PSNR).
- ``cc`` (r(A, F) + r(B, F)) / 2, Pearson correlations (Ma et al., Information Fusion 45:153,
  2019); not in VIFB.
- ``scd`` r(F − B, A) + r(F − A, B), the sum of the correlations of differences (Aslantas &
  Bendes, AEU 69:1890, 2015); not in VIFB.
- ``vif`` VIFp(A, F) + VIFp(B, F), pixel-domain visual information fidelity with each source as the
  reference (Sheikh & Bovik, IEEE TIP 15:430, 2006), equal to sewar 0.4.10's ``vifp`` (checked in
  the tests); not in VIFB (Han et al.'s VIFF is a different metric).
"""

from medarena.evaluators.fusion._metrics import (
    METRICS,
    fusion_cc,
    fusion_metrics,
    fusion_mi,
    fusion_psnr,
    fusion_rmse,
    fusion_scd,
    fusion_ssim,
    fusion_vif,
)
from medarena.evaluators.fusion._qabf import qabf
from medarena.evaluators.fusion._single import (
    average_gradient,
    entropy,
    mutual_information,
    spatial_frequency,
    standard_deviation,
)
from medarena.evaluators.fusion._task import TASK, FusionSettings, FusionTask, to_gray
from medarena.evaluators.fusion._windows import ssim_pair, vif_pair

__all__ = [
    "METRICS", "TASK", "FusionSettings", "FusionTask", "average_gradient", "entropy", "fusion_cc",
    "fusion_metrics", "fusion_mi", "fusion_psnr", "fusion_rmse", "fusion_scd", "fusion_ssim",
    "fusion_vif", "mutual_information", "qabf", "spatial_frequency", "ssim_pair", "standard_deviation",
    "to_gray", "vif_pair",
]
