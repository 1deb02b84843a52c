"""Denoisers behind one interface (:class:`~sbdbench.methods.base.Denoiser`), their registry, and the one resolver
of the settings a command runs them with (:func:`~sbdbench.methods.resolve.resolve_method`)."""

from sbdbench.methods.base import Denoiser, available_methods, get_method_class, make_method, register
from sbdbench.methods.resolve import ResolvedMethod, resolve_method

__all__ = ["Denoiser", "ResolvedMethod", "available_methods", "get_method_class", "make_method", "register", "resolve_method"]
