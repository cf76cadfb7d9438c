"""REST routes, one module per resource kind; all under ``/api/v1``."""
