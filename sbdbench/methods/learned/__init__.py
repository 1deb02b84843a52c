"""Learned denoisers: ScoreDenoise's networks, weights, patch-based inference and a trainer.

Importing this package registers the learned methods (``score``; ``sbd`` when present).
"""

from sbdbench.methods.learned import score  # noqa: F401  (registers "score")
from sbdbench.methods.learned import score_training  # noqa: F401  (registers the "score" training recipe)

try:  # the SBD model is built on top of these parts and lands separately
    from sbdbench.methods.learned import sbd  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only while sbd.py does not exist
    if exc.name != "sbdbench.methods.learned.sbd":
        raise
