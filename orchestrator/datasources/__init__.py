"""Data sources' data work, run by a snapshot job or a training job's download step: the
snapshot (``snapshot``: rows read from SQL (``sql``) or objects (``files``) into Parquet parts),
its schema and insights (``insights``), and a training channel's rows selected from a snapshot
(``rearrange``). All but ``hyperparameters`` need pyarrow and numpy (the algorithms image has
them; the core install does not), so import them only where that work runs."""
