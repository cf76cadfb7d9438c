"""Data sources' data work: a snapshot's schema and insights (``insights``), and a training
channel's rows selected from a snapshot (``rearrange``). Both need pyarrow and numpy (the
algorithms and data-source images have them; the core install does not), so import them only
where a snapshot is profiled or a data-source channel is read."""
