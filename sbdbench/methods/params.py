"""Method variants (``name:key=value[:key=value]``): typed values and one canonical spelling.

A variant's values are parsed with the types of the method's own constructor (``k: Optional[int]`` →
``int("03") == 3``, ``radius_scale: float`` → ``2.0``, a ``str`` parameter keeps its text), so
``pca:k=3`` and ``pca:k=03`` are the same cell and the same leaderboard row, and ``pca:k=abc`` is an
error before anything runs. The canonical spelling sorts the keys and writes each typed value back.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Dict, Optional, Tuple

from sbdbench.errors import InputError

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def split_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """``"pca:k=3:iterations=2"`` → ``("pca", {"k": "3", "iterations": "2"})`` (raw text values)."""
    name, *items = [part.strip() for part in str(spec).split(":")]
    raw: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"method variant {spec!r}: expected name:key=value[:key=value...], got {item!r}")
        if key.strip() in raw:
            raise InputError(f"method variant {spec!r}: parameter {key.strip()!r} is given twice")
        raw[key.strip()] = value.strip()
    return name, raw


def typed_overrides(spec: str, cls) -> Dict[str, Any]:
    """The variant's parameters, each parsed with the type of ``cls.__init__``'s parameter."""
    _, raw = split_spec(spec)
    hints = _constructor_types(cls)
    return {key: _coerce(spec, key, text, hints.get(key)) for key, text in raw.items()}


def canonical_spec(spec: str, cls) -> str:
    """One spelling per variant: the method name, then ``key=value`` sorted by key, values as typed."""
    name, _ = split_spec(spec)
    values = typed_overrides(spec, cls)
    return ":".join([name] + [f"{k}={format_value(values[k])}" for k in sorted(values)])


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _constructor_types(cls) -> Dict[str, Optional[tuple]]:
    """Parameter name → the tuple of accepted types (``None`` allowed as ``type(None)``), where known."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that cannot be resolved here: fall back to the defaults' types
        hints = {}
    out: Dict[str, Optional[tuple]] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in hints:
            out[name] = _flatten(hints[name])
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            out[name] = (type(param.default),)
    return out


def _flatten(hint) -> Optional[tuple]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union or type(hint).__name__ == "UnionType":
        types = tuple(t for a in args for t in (_flatten(a) or ()))
        return types or None
    return (hint,) if isinstance(hint, type) else None


def _coerce(spec: str, key: str, text: str, types: Optional[tuple]) -> Any:
    low = text.lower()
    if types is None or not any(t in (bool, int, float, str) for t in types):
        return _untyped(text)
    if type(None) in types and low in ("none", "null"):
        return None
    if bool in types and low in _WORDS and _WORDS[low] is not None:
        return _WORDS[low]
    for kind, cast in ((int, _as_int), (float, float)):
        if kind in types:
            try:
                return cast(text)
            except ValueError:
                pass
    if str in types:
        return text
    wanted = " or ".join(sorted({t.__name__ for t in types if t is not type(None)}))
    raise InputError(f"method variant {spec!r}: parameter {key} must be {wanted}, got {text!r}")


def _as_int(text: str) -> int:
    try:
        return int(text)  # '3', '03'
    except ValueError:
        value = float(text)  # '3.0', '1e3'
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _untyped(text: str) -> Any:
    """No usable annotation: int, float, true/false/none, else the text (the old rule)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return _WORDS.get(text.lower(), text)
