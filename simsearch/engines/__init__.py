"""Engines: where the pipeline runs beyond one process. `ray_engine` embeds and scores as Ray Data jobs;
`results` writes score results as JSON lines or Parquet for any engine."""
