"""The errors that mean bad input from a person (shown as one line), not a bug."""

from medarena.evaluators.ranking import RankingError
from medarena.evaluators.tasks import CaseError
from medarena.platform.challenges import DefinitionError
from medarena.platform.ingest import IngestError
from medarena.platform.offline import EvaluationSetupError
from medarena.platform.runner import ImageError, RunnerError
from medarena.platform.scheduler import SchedulerError
from medarena.platform.submissions import SubmissionError
from medarena.platform.tarballs import TarballError


class NotFound(LookupError):
    """An id or slug that does not exist."""


# RunnerError: podman missing or failing, which the person at the command line has to fix
USER_ERRORS = (DefinitionError, IngestError, SubmissionError, ImageError, RunnerError, EvaluationSetupError,
               CaseError, NotFound, FileNotFoundError, SchedulerError, RankingError, TarballError)
