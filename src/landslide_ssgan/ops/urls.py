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


def runs_url(base: str, experiment_id: str | None) -> str:
    """Where the MLflow UI shows an experiment's runs: MLflow 3 opens on its GenAI overview
    unless the page asks for the machine-learning view (the root, without an experiment)."""
    if experiment_id is None:
        return f"{base}/"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
