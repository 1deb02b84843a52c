"""Denoisers behind one interface (:class:`~sbdbench.methods.base.Denoiser`) and their registry."""

from sbdbench.methods.base import Denoiser, available_methods, get_method_class, make_method, register

__all__ = ["Denoiser", "available_methods", "get_method_class", "make_method", "register"]
