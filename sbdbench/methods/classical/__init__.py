"""Classical (non-learned) denoisers, vectorised numpy/scipy. Importing this package registers them all.

Each module is one method (or one family) with its paper in the class docstring and a small
``tuning_grid``; frozen per-(resolution, noise) settings live in ``baselines/<name>.toml``.
"""

from sbdbench.methods.classical import bilateral, graph_laplacian, jet, laplacian, mls, noisy, pca, wlop  # noqa: F401
from sbdbench.methods.classical.bilateral import Bilateral
from sbdbench.methods.classical.graph_laplacian import GraphLaplacianReg
from sbdbench.methods.classical.jet import Jet
from sbdbench.methods.classical.laplacian import Laplacian, Taubin
from sbdbench.methods.classical.mls import MLS
from sbdbench.methods.classical.noisy import Noisy
from sbdbench.methods.classical.pca import PCAProjection
from sbdbench.methods.classical.wlop import WLOP

__all__ = ["Bilateral", "GraphLaplacianReg", "Jet", "Laplacian", "MLS", "Noisy", "PCAProjection", "Taubin", "WLOP"]
