"""The batch transform instance runner: scores a transform job's share of records against a
model server and writes the outputs (the job's scratch layout in ``scratch.py``)."""
