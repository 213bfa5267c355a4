"""Keeping secrets out of MLMD, logs and errors: which names and values count as secret, and redaction.

A parameter named like a credential (password, token, secret, api_key, ...) never has its value recorded; a URL
carrying a password (`https://user:pw@host/...`) or a credential query parameter (`?token=...`) is recorded with
those parts replaced by `***`.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Iterable, List, Mapping, Set

REDACTED = "***"

_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "secrets", "token", "tokens", "apikey", "credential",
                 "credentials", "auth", "authorization", "signature", "sig", "privatekey"}
# Names ending in "key" are secret (api_key, signing_key, key) except these, which name columns or cache keys.
_SAFE_KEY_NAMES = {"cachekey", "sortkey", "partitionkey", "primarykey", "foreignkey", "joinkey", "groupkey",
                   "outputkey", "outputartifactkey", "outputparameterkey", "monkey", "turkey"}
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or property name looks like it holds a credential (`db_password`, `apiKey`, `token`)."""
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    joined = "".join(words)
    if any(word in _SECRET_WORDS for word in words):
        return True
    if joined.endswith(("password", "apikey", "secret", "token")):
        return True
    return joined.endswith("key") and joined not in _SAFE_KEY_NAMES


def redact_url(url: str) -> str:
    """`scheme://user:pw@host/p?token=x` -> `scheme://user:***@host/p?token=***`; other text is returned as is."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if has_password else netloc
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = "&".join(f"{k}={REDACTED if is_secret_name(k) else v}" for k, v in pairs)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """Every URL inside `text` with its credentials redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact(name: str, value: Any) -> Any:
    """The value to record for `name`: REDACTED for a secret name, otherwise with credentials removed from any URLs,
    recursing into lists and dicts (whose keys are names too)."""
    if is_secret_name(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(name, v) for v in value]
    return value


def secret_values(parameters: Mapping[str, Any]) -> List[str]:
    """The literal secret strings among `parameters` (values of secret names, passwords inside URLs), longest first,
    for scrubbing free text such as task logs."""
    found: Set[str] = set()

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(str(k), v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(name, v)
        elif isinstance(value, str):
            if is_secret_name(name) and len(value) >= 4:
                found.add(value)
            for match in _URL_IN_TEXT.finditer(value):
                parts = urllib.parse.urlsplit(match.group(0))
                if parts.password and len(parts.password) >= 4:
                    found.add(parts.password)
                for k, v in urllib.parse.parse_qsl(parts.query):
                    if is_secret_name(k) and len(v) >= 4:
                        found.add(v)

    for key, value in parameters.items():
        visit(key, value)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by REDACTED."""
    for value in values:
        text = text.replace(value, REDACTED)
    return text
