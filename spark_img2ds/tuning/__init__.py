"""Speed only: CPU pinning, the malloc arena cap, the worker daemon, warm-up and preload, the JVM class archive.

Nothing here imports the product; what a piece needs (module names, a java executable,
a workload command) is passed in by the driver or the worker that uses it.
"""
