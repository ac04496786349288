"""Datasets: pure generators, the Parquet contract, and batching."""
