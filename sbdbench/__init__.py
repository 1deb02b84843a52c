"""sbdbench: dataset and benchmark suite for point-cloud denoising, and SBD, a score-based diffusion denoiser."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("sbdbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from sbdbench.errors import SbdbenchError  # noqa: E402

__all__ = ["SbdbenchError", "__version__"]
