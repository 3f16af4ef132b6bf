"""The output contract: file names, metadata columns and statuses, stats, storage and commits, heartbeats.

Everything a reader of a dataset (or the driver reading its workers' output) relies on
is defined once here; the driver, the workers and the writers import it from here.
"""
