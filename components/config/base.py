"""The base of every settings model: frozen, unknown keys forbidden; and the one error type."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """A params file that does not validate; the message is one line naming the key."""
