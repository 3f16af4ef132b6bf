"""The demo: a local HTTP server over bundled photos (server.py, data/) and a real job on them (runner.py)."""
