"""Errors that reach the user as one clear line (the CLI prints them without a trace), and the checks raising them."""

from __future__ import annotations

import math
from typing import Any


class Img2dsError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(Img2dsError, ValueError):
    """An option has a bad value; the message names the option and the problem."""


class InputError(Img2dsError, ValueError):
    """The input cannot be read or lacks a needed column."""


class EnvironmentProblem(Img2dsError, RuntimeError):
    """Something outside the project is missing (Java, for instance)."""


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless cond holds."""
    if not cond:
        raise ConfigError(message)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


class ConversionError(Img2dsError):
    """An image could not be turned into an array; the message names the source briefly, never its content."""


class UnsupportedFormatError(ConversionError):
    """The bytes are not an image format this OpenCV decodes."""


class NPZError(ConversionError):
    """An npz file cannot be written or read safely (object arrays, pickles, a missing manifest)."""
