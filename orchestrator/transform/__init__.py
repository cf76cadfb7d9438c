"""Batch transform, pure: records, filters, mini-batches and the work plan."""
