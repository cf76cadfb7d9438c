"""The snapshot step's error: what the data source's FailureReason says."""

from __future__ import annotations

from orchestrator.errors import ValidationError


class DataSourceError(ValidationError):
    """The data could not be read as given: an unreachable database, a bad query or credentials,
    a column type with no Arrow counterpart, files that disagree. Permanent (retrying the same
    spec fails the same way); the message names the data source and the fix and never holds a
    password."""
