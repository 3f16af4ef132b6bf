"""Politeness: who we say we are, the opt-outs sites answer with, and the waits they ask for (pure functions).

X-Robots-Tag follows img2dataset's rules, with noml added; the TDMRep header
``tdm-reservation: 1`` (text and data mining rights reserved) counts as an opt-out when
the pseudo-directive tdm-reservation is among the directives, as it is by default.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable

BASE_USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
PROJECT_URL = "https://github.com/rom1504/img2dataset"
OPT_OUT_MESSAGE = "Use of image disallowed by X-Robots-Tag directive"
TDM_DIRECTIVE = "tdm-reservation"
TDM_MESSAGE = "Use of image disallowed by tdm-reservation header"
DEFAULT_DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex", "noml", TDM_DIRECTIVE)


def user_agent(token: str | None) -> str:
    """img2dataset's user agent, naming the token so that sites can opt out of it."""
    if token:
        return f"{BASE_USER_AGENT} (compatible; {token}; +{PROJECT_URL})"
    return BASE_USER_AGENT


def is_disallowed(header_values: Iterable[str], token: str | None, directives: frozenset[str]) -> bool:
    """True if an X-Robots-Tag value opts out for all agents or for this token.

    A value is either "directive, directive" or "agent: directive, directive".
    """
    token = token.strip().lower() if token else None
    for value in header_values:
        agent, sep, rest = value.partition(":")
        named = agent.strip().lower() if sep else None
        listed = rest if sep else agent
        if named is not None and named not in ("*", token):
            continue
        if any(d.strip().lower() in directives for d in listed.split(",")):
            return True
    return False


def tdm_reserved(values: Iterable[str]) -> bool:
    """True if a tdm-reservation header reserves the rights (TDMRep: the value 1)."""
    return any(v.strip() == "1" for v in values)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After value asks to wait (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
