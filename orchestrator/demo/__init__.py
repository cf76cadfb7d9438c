"""The end-to-end demo behind ``make demo`` (``python -m orchestrator.demo``)."""
