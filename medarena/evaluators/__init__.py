"""Scoring: pure functions over arrays, boxes and points, one module per task family.

Nothing here touches files, databases or Ray. The platform (``medarena.platform``) reads files and
calls these functions; the task classes in :mod:`medarena.evaluators.tasks` are the interface it
uses.
"""
