"""Registration: a displacement field scored by landmarks, warped labels and its regularity.

What a user imports: :func:`target_registration_error`, :func:`jacobian_determinant`,
:func:`sdlogj`, :func:`folding`, the field helpers (:func:`sample_field`, :func:`warp_labels`), the
landmark parsers, and the task the platform uses (:data:`TASK`, :class:`RegistrationSettings`).
Conventions (``default`` and ``l2r``): docs/metrics.md, section Registration.
"""

from medarena.evaluators.registration._fields import (
    sample_field,
    target_registration_error,
    tre_summary,
    warp_labels,
)
from medarena.evaluators.registration._jacobian import folding, jacobian_determinant, sdlogj
from medarena.evaluators.registration._landmarks import (
    Landmarks,
    pair_landmarks,
    parse_landmarks_csv,
    parse_landmarks_json,
)
from medarena.evaluators.registration._task import TASK, RegistrationSettings, RegistrationTask

__all__ = [
    "TASK", "Landmarks", "RegistrationSettings", "RegistrationTask", "folding", "jacobian_determinant",
    "pair_landmarks", "parse_landmarks_csv", "parse_landmarks_json", "sample_field", "sdlogj",
    "target_registration_error", "tre_summary", "warp_labels",
]
