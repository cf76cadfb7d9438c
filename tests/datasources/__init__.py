"""Tests of the DataSource snapshot step (orchestrator/datasources)."""
