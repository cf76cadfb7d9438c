"""Kubernetes: custom resources generated from the resource models, and the operator."""
