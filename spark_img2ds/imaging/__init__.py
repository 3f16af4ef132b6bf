"""Bytes to pixels and back: decode, EXIF, resize, encode.

Takes an ImageOptions, not the job's Config, so that it works without Spark.
"""
