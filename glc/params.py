"""Typed settings: :class:`Param` declares one setting (default, type, valid values), :func:`check_table` checks a
TOML table against a schema of them.

The experiment config (:mod:`glc.config`), the loss registry (:mod:`glc.training.losses`) and every model kind
(:mod:`glc.models.registry`) declare their settings with :class:`Param`, so each value is checked the same way, at
load, with an error that names the file and the key: unknown keys raise, an int stays an int (``2.9`` is refused,
never truncated), a float accepts an int, a bool must be ``true``/``false``, ranges and choices are enforced.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

__all__ = ["TYPES", "ConfigError", "Param", "Schema", "check_table", "defaults_of"]


class ConfigError(ValueError):
    """An experiment file has an unknown key or a bad value."""


#: Value types a :class:`Param` can hold.
TYPES: tuple[str, ...] = ("int", "float", "bool", "str", "list[str]", "list[int]", "list[float]")


@dataclass(frozen=True)
class Param:
    """One setting: its default, type and valid values.

    Attributes:
        default: the default value (its type is the setting's type unless ``type`` says otherwise).
        doc: what it does (for reports and error messages).
        type: one of :data:`TYPES`; inferred from ``default`` when empty (an empty list default needs it).
        choices: the valid values (for a list: of each item), or a callable returning them (registries are looked up
            when a config is checked, not at import).
        min: smallest valid value (numbers: the value; lists: each item), inclusive unless ``min_exclusive``.
        max: largest valid value, inclusive.
        min_exclusive: ``min`` itself is not valid.
        unique: list items must not repeat.
    """

    default: Any
    doc: str = ""
    type: str = ""
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    unique: bool = True

    @property
    def value_type(self) -> str:
        """The declared or inferred type."""
        if self.type:
            return self.type
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "int"
        if isinstance(d, float):
            return "float"
        if isinstance(d, str):
            return "str"
        if isinstance(d, (list, tuple)) and d:
            return f"list[{Param(d[0]).value_type}]"
        raise TypeError(f"Param default {d!r}: cannot infer a type; pass type= (one of {TYPES})")

    def valid_choices(self) -> tuple[Any, ...] | None:
        """The choices (a callable is called)."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` normalised to the type (int -> float for float settings), or raise naming ``where``."""
        t = self.value_type
        if t.startswith("list["):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(
                    f"{where} = {value!r}: expected a list of {t[5:-1]} (e.g. [] or [{_example(t[5:-1])}])"
                )
            out = [_scalar(t[5:-1], v, f"{where}[{i}]") for i, v in enumerate(value)]
            for i, v in enumerate(out):
                self._range(v, f"{where}[{i}]")
            if self.unique and len(set(map(repr, out))) != len(out):
                raise ConfigError(f"{where} = {value!r}: an item is listed twice")
            return out
        v = _scalar(t, value, where)
        self._range(v, where)
        return v

    def _range(self, v: Any, where: str) -> None:
        choices = self.valid_choices()
        if choices is not None and v not in choices:
            raise ConfigError(f"{where} = {v!r}: not a valid value; valid values are {sorted(map(str, choices))}")
        if self.min is not None and (v < self.min or (self.min_exclusive and v == self.min)):
            op = ">" if self.min_exclusive else ">="
            raise ConfigError(f"{where} = {v!r}: must be {op} {self.min}")
        if self.max is not None and v > self.max:
            raise ConfigError(f"{where} = {v!r}: must be <= {self.max}")


def _example(t: str) -> str:
    return {"str": '"a"', "int": "1", "float": "0.5", "bool": "true"}.get(t, "...")


def _scalar(t: str, v: Any, where: str) -> Any:
    if t == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{where} = {v!r}: expected true or false")
        return v
    if t == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            hint = " (an integer is required; it is never rounded)" if isinstance(v, float) else ""
            raise ConfigError(f"{where} = {v!r}: expected an integer{hint}")
        return v
    if t == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where} = {v!r}: expected a finite number")
        return float(v)
    if t == "str":
        if not isinstance(v, str):
            raise ConfigError(f"{where} = {v!r}: expected a string")
        return v
    raise TypeError(f"unknown Param type {t!r}; valid types are {TYPES}")


#: A schema table: keys to :class:`Param` or to nested tables.
Schema = dict[str, Union[Param, "Schema"]]


def _table(schema: Any) -> Schema:
    return schema() if callable(schema) else schema


def defaults_of(schema: Schema) -> dict[str, Any]:
    """The plain default values of a schema table (nested tables become dicts)."""
    out: dict[str, Any] = {}
    for k, p in schema.items():
        out[k] = copy.deepcopy(p.default) if isinstance(p, Param) else defaults_of(_table(p))
    return out


def check_table(schema: Schema, over: Mapping[str, Any], where: str, source: str) -> dict[str, Any]:
    """Defaults of ``schema`` updated with ``over``, every value checked (see the module docstring).

    Args:
        schema: the table's :class:`Param` s (nested tables allowed, also as callables returning a table).
        over: the overrides (a TOML table).
        where: the dotted path of the table (``"model"``) for messages.
        source: the file the overrides come from (for messages).

    Raises:
        ConfigError: naming ``source`` and the key.
    """
    out: dict[str, Any] = {}
    for k, v in over.items():
        path = f"{where}.{k}" if where else k
        if k not in schema:
            raise ConfigError(
                f"{source}: unknown key {path!r}; valid keys here are {sorted(schema)}. Fix the spelling, or declare "
                "the setting (with its type and valid values) in glc/config.py SCHEMA or in the model kind's params."
            )
        p = schema[k]
        if isinstance(p, Param):
            try:
                out[k] = p.check(v, path)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        else:
            if not isinstance(v, Mapping):
                raise ConfigError(f"{source}: {path!r} must be a table, got {type(v).__name__} {v!r}")
            out[k] = check_table(_table(p), v, path, source)
    for k, p in schema.items():
        if k not in out:
            out[k] = (
                copy.deepcopy(p.default)
                if isinstance(p, Param)
                else check_table(_table(p), {}, f"{where}.{k}".strip("."), source)
            )
    return {k: out[k] for k in schema}
