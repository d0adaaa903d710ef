"""Storage and tracking URLs as they may be shown to people."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(uri: str) -> str:
    """The URL without its password, fit for a tag, a report or an error message."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
