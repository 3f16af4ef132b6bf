"""Runs on the Spark driver: session, reading the input, sharding, the job (plan, run, retry), progress, summary."""
