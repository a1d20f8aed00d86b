"""The errors that mean bad input from a person (shown as one line), not a bug.

Every platform error derives from :mod:`medarena.errors`; the evaluators' own errors (they
import nothing of the platform) and a missing file are listed beside them.
"""

from medarena.errors import MedarenaError, NotFound
from medarena.evaluators.ranking import RankingError
from medarena.evaluators.tasks import CaseError

__all__ = ["NotFound", "USER_ERRORS", "exit_code"]

USER_ERRORS = (MedarenaError, CaseError, FileNotFoundError, RankingError)


def exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, MedarenaError) else 1
