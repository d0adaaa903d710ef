"""Storage and tracking URLs as they may be shown to people."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def redacted(uri: str) -> str:
    """The URL without its password, fit for a tag, a report or an error message."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def runs_url(base: str, experiment_id: str | None, best_first: str | None = None) -> str:
    """Where the MLflow UI shows an experiment's runs: MLflow 3 opens on its GenAI overview
    unless the page asks for the machine-learning view (the root, without an experiment);
    `best_first` names a metric to sort the runs by, highest first (the page reads
    `orderByKey` and `orderByAsc`: checked in MLflow 3.17's UI with headless Chromium)."""
    if experiment_id is None:
        return f"{base}/"
    page = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if best_first is None:
        return page
    return f"{page}&orderByKey={quote(f'metrics.`{best_first}`', safe='.')}&orderByAsc=false"
