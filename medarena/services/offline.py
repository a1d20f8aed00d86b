"""`medarena evaluate`: scoring prediction files against reference files with a built-in
evaluator, without containers, database or cluster."""

from medarena.platform.offline import EvaluationSetupError, build_settings, evaluate_files, write_json

__all__ = ["EvaluationSetupError", "build_settings", "evaluate_files", "write_json"]
