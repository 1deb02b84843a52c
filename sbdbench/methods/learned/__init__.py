"""Learned denoisers: ScoreDenoise's networks, weights, patch-based inference and a trainer, SBD, and the
later state of the art (PD-Flow, IterativePFN, StraightPCF) with their released weights.

Importing this package registers the learned methods.
"""

import importlib

from sbdbench.methods.learned import score  # noqa: F401  (registers "score")
from sbdbench.methods.learned import score_training  # noqa: F401  (registers the "score" training recipe)
from sbdbench.methods.learned import sbd  # noqa: F401  (registers "sbd" and its training recipe)

#: the later published methods, each in its own module (registered on import; one that is not part of this
#: build is skipped, a broken one raises)
LATER_METHODS = ("pdflow", "iterativepfn", "straightpcf")

for _name in LATER_METHODS:
    try:
        importlib.import_module(f"sbdbench.methods.learned.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"sbdbench.methods.learned.{_name}":
            raise
