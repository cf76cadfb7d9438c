"""Orchestrator: a self-hosted ML training and hosting orchestrator with SageMaker-shaped APIs."""

__version__ = "0.1.0"
