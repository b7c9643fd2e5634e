"""Engines: where the pipeline runs beyond one process. `ray_engine` is the Ray executor (a pool of actors
embedding and scoring for `Inspector.fit` and `iter_score`); `results` writes score results as JSON lines or
Parquet for any engine."""
