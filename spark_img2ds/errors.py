"""Errors that reach the user as one clear line (the CLI prints them without a trace)."""


class Img2dsError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(Img2dsError, ValueError):
    """An option has a bad value; the message names the option and the problem."""


class InputError(Img2dsError, ValueError):
    """The input cannot be read or lacks a needed column."""


class EnvironmentProblem(Img2dsError, RuntimeError):
    """Something outside the project is missing (Java, for instance)."""
