"""etcd keys as label values: valid UTF-8 whatever the bytes, bounded, optionally redacted.

Keys are arbitrary bytes and can be sensitive (tenant names, secrets' names), so only top-N
lists carry them, and `key_labels` chooses how they appear:
  full    the key, with invalid UTF-8 bytes escaped as \\xNN
  prefix  only the key's prefix group (see prefixes.py), e.g. /registry/secrets/
  hash    'sha256:' and the first 16 hex digits of the key's SHA-256
"""

from __future__ import annotations

import hashlib

KEY_LABEL_MODES = ("full", "prefix", "hash")
MAX_LABEL_CHARS = 256


def printable_key(key: bytes, limit: int = MAX_LABEL_CHARS) -> str:
    """Valid UTF-8 text for any byte string: undecodable bytes become \\xNN, control characters
    are escaped too, and a key longer than `limit` is cut with a '...' marker."""
    text = key.decode("utf-8", errors="backslashreplace")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def hashed_key(key: bytes) -> str:
    return "sha256:" + hashlib.sha256(key).hexdigest()[:16]


# Keys under these prefixes name secrets (Kubernetes Secrets' names): even with key_labels
# `full`, they are labelled by hash unless the configuration says otherwise.
DEFAULT_SENSITIVE_PREFIXES = ("/registry/secrets/",)


def key_label(
    key: bytes,
    mode: str,
    prefix: str | None = None,
    sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES,
) -> str:
    if mode == "full" and any(key.startswith(p.encode()) for p in sensitive):
        return hashed_key(key)
    if mode == "hash":
        return hashed_key(key)
    if mode == "prefix":
        return prefix if prefix is not None else hashed_key(key)
    return printable_key(key)
