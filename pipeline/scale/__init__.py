"""Registry scale: partitioned Parquet and per-partition sufficient statistics on Dask."""
