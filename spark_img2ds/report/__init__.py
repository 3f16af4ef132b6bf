"""The run report (_report.html): inline SVG charts built from a dataset's files."""
