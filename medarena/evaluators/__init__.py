"""Scoring: pure functions over arrays, boxes and points, one package per task family.

``segmentation``, ``detection``, ``classification``, ``registration`` and ``fusion`` each expose
their metric functions and their task (``TASK``) in their ``__init__``; ``ranking`` ranks
submissions from per-case values. :mod:`medarena.evaluators.registry` says, for every metric, its
family, its direction (higher or lower is better) and its parameters; the input checks that
every path shares are in ``_checks``. Nothing here touches files, databases or Ray: the platform
(``medarena.platform``) reads files and calls the task objects of :mod:`medarena.evaluators.tasks`.
"""
