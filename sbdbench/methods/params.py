"""The one ``key=value`` parser: ``--param k=v`` items, ``-o k=v`` options and method variants
(``name:key=value[:key=value]``), with typed values and one canonical spelling.

A method's values are parsed with the types of its own constructor (``k: Optional[int]`` →
``int("03") == 3``, ``radius_scale: float`` → ``2.0``, a ``str`` parameter keeps its text), so
``pca:k=3``, ``pca:k=03`` and ``--param k=3`` are the same setting, the same cell and the same leaderboard
row, and ``pca:k=abc`` is an error before anything runs. The canonical spelling sorts the keys and writes
each typed value back. Values of options that belong to no constructor (recipe options, fetch options)
are read by one rule: int, float, ``true``/``false``/``none``, else the text (:func:`untyped_value`).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from sbdbench.errors import InputError

_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False, "none": None, "null": None}


def parse_assignments(items: Iterable[str], what: str = "--param") -> Dict[str, str]:
    """``["k=3", "weights=official"]`` → ``{"k": "3", "weights": "official"}`` (raw text; a key given twice,
    an item without ``=`` or with an empty key is a one-line error naming ``what``)."""
    raw: Dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what}: expected key=value, got {item!r}")
        if key.strip() in raw:
            raise InputError(f"{what}: parameter {key.strip()!r} is given twice")
        raw[key.strip()] = value.strip()
    return raw


def split_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """``"pca:k=3:iterations=2"`` → ``("pca", {"k": "3", "iterations": "2"})`` (raw text values)."""
    name, *items = [part.strip() for part in str(spec).split(":")]
    try:
        return name, parse_assignments(items, f"method variant {spec!r}")
    except InputError as exc:
        if "expected key=value" in str(exc):
            bad = next(i for i in items if "=" not in i or not i.partition("=")[0].strip())
            raise InputError(f"method variant {spec!r}: expected name:key=value[:key=value...], got {bad!r}") from None
        raise


def method_name(spec: str) -> str:
    """The registered name of a spec (``"pca:k=3"`` → ``"pca"``); a malformed variant is a one-line error."""
    return split_spec(spec)[0]


def typed_params(cls, values: Mapping[str, Any], what: str) -> Dict[str, Any]:
    """``values`` for ``cls``'s constructor: text values parsed with the type of the parameter of that name
    (other values kept as given); a name the constructor lacks is a one-line error."""
    unknown = sorted(set(values) - set(cls._param_names()))
    if unknown:
        raise InputError(f"{what}: {cls.name} has no parameter(s) {', '.join(unknown)} (it has: {', '.join(cls._param_names()) or 'none'})")
    hints = _constructor_types(cls)
    return {key: _coerce(what, key, value, hints.get(key)) if isinstance(value, str) else value for key, value in values.items()}


def typed_overrides(spec: str, cls) -> Dict[str, Any]:
    """The variant's parameters, each parsed with the type of ``cls.__init__``'s parameter."""
    _, raw = split_spec(spec)
    hints = _constructor_types(cls)
    return {key: _coerce(f"method variant {spec!r}", key, text, hints.get(key)) for key, text in raw.items()}


def untyped_values(items: Iterable[str], what: str = "-o") -> Dict[str, Any]:
    """``key=value`` items of options that belong to no constructor, each value read by :func:`untyped_value`."""
    return {key: untyped_value(text) for key, text in parse_assignments(items, what).items()}


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


def _coerce(what: str, key: str, text: str, types: Optional[tuple]) -> Any:
    low = text.lower()
    if types is None or not any(t in (bool, int, float, str) for t in types):
        return untyped_value(text)
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
    raise InputError(f"{what}: parameter {key} must be {wanted}, got {text!r}")


def _as_int(text: str) -> int:
    try:
        return int(text)  # '3', '03'
    except ValueError:
        value = float(text)  # '3.0', '1e3'
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def untyped_value(text: str) -> Any:
    """A value with no type to follow: int, float, ``true``/``yes``/``on``, ``false``/``no``/``off``, ``none``/``null``,
    else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return _WORDS.get(text.lower(), text)
