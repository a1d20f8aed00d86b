"""The demo challenges: one per task family, with synthetic (and one real) cases and the example
algorithms as participants."""

from medarena.platform.demo import IMAGE, PHASE, get_demo, prepare, report

__all__ = ["IMAGE", "PHASE", "get_demo", "prepare", "report"]
