"""Learned denoisers: ScoreDenoise's networks, weights, patch-based inference and a trainer, SBD, and the
later state of the art (PD-Flow, IterativePFN, StraightPCF) with their released weights.

Importing this package registers the learned methods and the training recipes (``score``, ``sbd``).
"""

from sbdbench.methods.learned import iterativepfn, pdflow, sbd, score, score_training, straightpcf  # noqa: F401  (register)
