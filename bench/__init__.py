"""Side-by-side throughput benchmark of spark_img2ds and img2dataset (``make bench``)."""
