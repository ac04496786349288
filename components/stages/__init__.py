"""The I/O boundary: one module per pipeline stage, each with `run(params, ...)` and `main()`.
DVC (dvc.yaml, through the `arena` CLI) and Prefect (flows/) call the same `run` functions."""
