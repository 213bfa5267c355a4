"""Content digests of artifacts, recorded at publish and checked by `kfp-lineage verify`.

A file's digest is the sha256 of its bytes; a directory's is the sha256 over its files in sorted relative-path
order, each as `<relative path>\\0<sha256 of the file>\\n`, so renaming, adding, removing or changing any file
changes it. Symlinks are followed only inside the directory.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Optional

DIGEST_PROPERTY = "content_sha256"
_CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path: str) -> Optional[str]:
    """The digest of a local file or directory, or None when nothing is there."""
    if os.path.isfile(path):
        return file_sha256(path)
    if not os.path.isdir(path):
        return None
    root = os.path.realpath(path)
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            full = os.path.join(directory, name)
            if not os.path.realpath(full).startswith(root + os.sep):
                continue  # a link out of the artifact is not part of it
            relative = os.path.relpath(full, root)
            digest.update(f"{relative}\0{file_sha256(full)}\n".encode())
    return digest.hexdigest()


def with_content_digest(metadata: Dict[str, Any], uri: str) -> Dict[str, Any]:
    """An artifact's metadata plus the sha256 of its local file or directory (tamper evidence for `verify`); as it
    is when the URI is remote (it has a scheme) or names nothing on disk."""
    digest = path_sha256(uri) if "://" not in uri else None
    if digest is not None:
        metadata = dict(metadata, **{DIGEST_PROPERTY: digest})
    return metadata
