"""Downloading: the fetch policy (redirects, retries, deadlines, opt-out) and the lean HTTP/1.1 client."""
