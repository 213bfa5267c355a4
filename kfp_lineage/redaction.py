"""Keeping secrets out of MLMD, logs and errors: which names and values count as secret, and redaction.

A parameter named like a credential (password, token, secret, api_key, access_token, ...: a deny-list, see
is_secret_name) or holding a value shaped like one (a GitHub/Hugging Face/AWS token, a JWT, a PEM private key) never
has its value recorded; a URL carrying a password (`https://user:pw@host/...`) or a credential query parameter
(`?token=...`, `?sig=...`) is recorded with those parts replaced by `***`. Redaction is for what is written and
shown: cache fingerprints and the values tasks receive are the real ones.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from typing import Any, Iterable, List, Mapping, Set

REDACTED = "***"

# A deny-list of words that name a credential on their own; ordinary names that merely contain "key" or "token"
# (label_key, object_key, max_tokens, eos_token, model_signature) are not secret.
_SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "secrets", "credential", "credentials",
                 "apikey", "privatekey", "authorization", "bearer"}
# Word pairs that name a credential: `api_key`, `access_token`, `client_secret` (already caught by "secret"), ...
_KEY_QUALIFIERS = {"api", "private", "secret", "access", "signing", "encryption", "ssh", "account", "master",
                   "service", "storage", "sas", "subscription"}
_TOKEN_QUALIFIERS = {"access", "auth", "refresh", "bearer", "session", "api", "id", "oauth", "github", "gh", "gitlab",
                     "hf", "huggingface", "slack", "personal", "pat", "service", "sas", "security", "csrf", "jwt",
                     "registry", "npm", "pypi", "kaggle", "wandb", "client"}
# Names that are a credential on their own.
_SECRET_NAMES = {"token", "key", "auth", "pat", "sas", "dsn"}
# URL query parameters that carry a credential (signed URLs of S3, GCS and Azure) besides the names above.
_SECRET_QUERY_NAMES = {"sig", "signature", "x-amz-signature", "x-goog-signature", "x-amz-security-token",
                       "x-amz-credential", "x-goog-credential"}
# Values that are credentials whatever they are called: well-known token prefixes and PEM private keys.
_CREDENTIAL_VALUE = re.compile(
    r"^(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|[sr]k_live_[A-Za-z0-9]{20,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})$"  # the last one is a JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


@functools.lru_cache(maxsize=4096)  # pure; the recorder asks for every property of every task
def is_secret_name(name: str) -> bool:
    """Whether a parameter or property name names a credential (`db_password`, `apiKey`, `GITHUB_TOKEN`, `token`).

    A deny-list of clear secret words and word pairs, so names that merely end in "key" or "tokens" (label_key,
    object_key, cache_key, max_tokens, eos_token) stay readable in MLMD and logs.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    joined = "".join(words)
    if joined in _SECRET_NAMES or any(word in _SECRET_WORDS for word in words):
        return True
    if joined.endswith(("password", "passwd", "apikey", "secret", "privatekey", "accesstoken", "authtoken")):
        return True
    for first, second in zip(words, words[1:]):
        if (second == "key" and first in _KEY_QUALIFIERS) or (second == "token" and first in _TOKEN_QUALIFIERS):
            return True
    return False


def looks_like_credential(value: Any) -> bool:
    """Whether a string value is a credential by its shape (a GitHub/Hugging Face/OpenAI/Slack/AWS/Google token, a
    JWT, a PEM private key), whatever the parameter holding it is called."""
    return isinstance(value, str) and len(value) >= 16 and _CREDENTIAL_VALUE.search(value.strip()) is not None


def _is_secret_query_name(name: str) -> bool:
    return is_secret_name(name) or name.lower() in _SECRET_QUERY_NAMES


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
        if any(_is_secret_query_name(k) for k, _ in pairs):
            query = "&".join(f"{k}={REDACTED if _is_secret_query_name(k) else v}" for k, v in pairs)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """Every URL inside `text` with its credentials redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact(name: str, value: Any) -> Any:
    """The value to record for `name`: REDACTED for a secret name, otherwise with credentials removed from any URLs,
    recursing into lists and dicts (whose keys are names too)."""
    if (is_secret_name(name) and value not in (None, "")) or looks_like_credential(value):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(name, v) for v in value]
    return value


def contains_redacted(value: Any) -> bool:
    """Whether a value read back from MLMD had something redacted in it (it holds REDACTED somewhere)."""
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, Mapping):
        return any(contains_redacted(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_redacted(v) for v in value)
    return False


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
            if (is_secret_name(name) and len(value) >= 4) or looks_like_credential(value):
                found.add(value)
            for match in _URL_IN_TEXT.finditer(value):
                parts = urllib.parse.urlsplit(match.group(0))
                if parts.password and len(parts.password) >= 4:
                    found.add(parts.password)
                for k, v in urllib.parse.parse_qsl(parts.query):
                    if _is_secret_query_name(k) and len(v) >= 4:
                        found.add(v)

    for key, value in parameters.items():
        visit(key, value)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by REDACTED."""
    for value in values:
        text = text.replace(value, REDACTED)
    return text
