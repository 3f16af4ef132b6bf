"""Runs in the Spark executors' Python workers: the mapInArrow task, the shard loop, the sample maker."""
