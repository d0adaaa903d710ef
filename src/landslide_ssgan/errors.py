"""The two kinds of error a user can fix: bad settings and bad input files.

Both carry a one-line message that names the key or file and what is wrong; the CLI prints it
and exits non-zero instead of showing a stack trace.
"""


class LandslideError(Exception):
    """Base class for errors whose message is meant for the user, as is."""


class ConfigError(LandslideError):
    """A params.yaml value is missing, of the wrong type or out of range."""


class InputError(LandslideError):
    """An input file is missing, unreadable or inconsistent with the settings."""


def first_line(exc: BaseException) -> str:
    """A library's error message, first line only (GDAL, SQLAlchemy and MLflow append stack
    traces, SQL or the whole input), or the error's type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
