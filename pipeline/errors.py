"""Errors a user can act on.

A :class:`UserError` is a problem with the user's input (a file, a column, a config value),
not a bug: the command line prints its one-line message and exits with code 2, never a
traceback. Messages name the file, the row or column, and what to do.
"""


class UserError(Exception):
    """A problem in the user's input, reported as one clear line with exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """``params.yaml`` or a ``study.yaml`` is missing a field, has an unknown key or a bad value."""


class InputFileError(UserError):
    """An input file is missing, unreadable, empty, or lacks a mapped column."""
