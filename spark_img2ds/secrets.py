"""Credentials in option values and URLs, replaced by *** wherever they would be shown (pure functions)."""

from __future__ import annotations

import re
from typing import Any

_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|credential|key|connection_string|authorization|sas|signature|cookie",
    re.IGNORECASE,
)
# Query parameters that carry a credential in signed URLs (S3, GCS, Azure SAS) and API links.
_SECRET_QUERY = re.compile(
    r"^(sig|signature|x-amz-.*|x-goog-.*|googleaccessid|.*token.*|.*key.*|.*secret.*|pass.*)$", re.I
)


def redact_url(text: str) -> str:
    """text with a URL's user:password@ and the values of credential query parameters replaced by ***."""
    text = re.sub(r"(?<=://)[^/@\s]*@", "***@", text)

    def scrub(match: re.Match) -> str:
        name, value = match.group(2), match.group(3)
        return f"{match.group(1)}{name}={'***' if value and _SECRET_QUERY.match(name) else value}"

    return re.sub(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)", scrub, text)


def redact(value: Any) -> Any:
    """A mapping or list with the values of keys that name a credential replaced by ***."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_NAME.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
