"""Who we say we are, and the X-Robots-Tag opt-out that sites answer with (img2dataset's rules)."""

from __future__ import annotations

from collections.abc import Iterable

BASE_USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
PROJECT_URL = "https://github.com/rom1504/img2dataset"
OPT_OUT_MESSAGE = "Use of image disallowed by X-Robots-Tag directive"
DEFAULT_DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")


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
