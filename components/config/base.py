"""The base of every settings model: frozen, unknown keys forbidden, no booleans where a number
is due, no NaN or infinity; and the one error type."""
from __future__ import annotations

import re
import types
import typing

from pydantic import BaseModel, ConfigDict, model_validator

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # task, arch and init names: they become folder names


class ConfigError(ValueError):
    """A params file that does not validate; the message is one line naming the key."""


def _numeric(annotation) -> bool:
    """Whether a field is a number (int or float, optional or not): YAML's `true` is not one."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        # pydantic reads `true` as 1 for an int field; `steps: true` is a typo, not a budget
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and _numeric(field.annotation):
                    raise ValueError(f"{name}: {str(data[name]).lower()} is a boolean, not a number")
        return data


def plain_name(name: str, section: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{section}: {name!r} is not a plain name (letters, digits and _, not starting with a "
                         "digit); names become folder names")
    return name
