"""The states of submissions, jobs, evaluations, uploads and roles, for the command line, the API
and the dashboard (which import nothing of the platform themselves)."""

from medarena.platform.states import (
    ENDED_SUBMISSION,
    FINAL_SUBMISSION,
    HELD_UPLOAD,
    UNFINISHED,
    EvaluationState,
    JobState,
    RoleState,
    SubmissionState,
    UploadState,
)

__all__ = ["ENDED_SUBMISSION", "FINAL_SUBMISSION", "HELD_UPLOAD", "UNFINISHED", "EvaluationState", "JobState",
           "RoleState", "SubmissionState", "UploadState"]
