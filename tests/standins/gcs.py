"""A Cloud Storage JSON API stand-in: buckets get/insert/IAM, objects insert (media, multipart, resumable) and get.

Point google-cloud-storage at it with `STORAGE_EMULATOR_HOST=<url>`; the client then talks to it anonymously.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote, unquote

import google_crc32c

from tests.standins.server import HttpError, Reply, Request, StandInServer

_BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)"
_UPLOAD = r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o"


class GcsStandIn(StandInServer):
    """Buckets and objects in memory; every bucket belongs to `project_number` unless created with another."""

    name = "GCS stand-in"

    def __init__(self, project_number: str = "123456789012") -> None:
        super().__init__()
        self.project_number = project_number
        self.buckets: Dict[str, Dict[str, Any]] = {}
        self.objects: Dict[Tuple[str, str], bytes] = {}
        self.object_metadata: Dict[Tuple[str, str], Dict[str, Any]] = {}
        self.iam_policies: Dict[str, Dict[str, Any]] = {}
        self._sessions: Dict[str, Dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.route("GET", _BUCKET, self._get_bucket)
        self.route("POST", r"/storage/v1/b", self._insert_bucket)
        self.route("GET", _BUCKET + "/iam", self._get_iam)
        self.route("PUT", _BUCKET + "/iam", self._set_iam)
        self.route("POST", _UPLOAD, self._upload)
        self.route("PUT", _UPLOAD, self._resumable_chunk)
        self.route("GET", _BUCKET + r"/o/(?P<name>[^/]+)", self._get_object)
        self.route("GET", r"/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>[^/]+)", self._download)

    # --- set-up helpers for tests --------------------------------------------------------------------------

    def add_bucket(self, name: str, project_number: Optional[str] = None, location: str = "US-CENTRAL1") -> None:
        """Creates a bucket as if it already existed in the project (or in another one)."""
        with self._lock:
            self.buckets[name] = self._bucket_resource(name, project_number or self.project_number, location)

    def add_object(self, bucket: str, name: str, data: bytes) -> None:
        with self._lock:
            if bucket not in self.buckets:
                self.add_bucket(bucket)
            self._store(bucket, name, data, {})

    def object_names(self, bucket: str) -> list:
        with self._lock:
            return sorted(name for b, name in self.objects if b == bucket)

    # --- buckets -------------------------------------------------------------------------------------------

    def _bucket_resource(self, name: str, project_number: str, location: str) -> Dict[str, Any]:
        return {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "projectNumber": project_number,
            "location": location.upper(),
            "storageClass": "STANDARD",
            "metageneration": "1",
            "etag": "CAE=",
        }

    def _require_bucket(self, bucket: str) -> Dict[str, Any]:
        found = self.buckets.get(unquote(bucket))
        if found is None:
            raise HttpError(404, "The specified bucket does not exist.")
        return found

    def _get_bucket(self, request: Request, bucket: str) -> Reply:
        return Reply(200, self._require_bucket(bucket))

    def _insert_bucket(self, request: Request) -> Reply:
        body = request.body or {}
        name = body.get("name", "")
        if name in self.buckets:
            raise HttpError(409, "Your previous request to create the named bucket succeeded and you already own it.")
        self.buckets[name] = self._bucket_resource(name, self.project_number, body.get("location") or "US")
        return Reply(200, self.buckets[name])

    def _get_iam(self, request: Request, bucket: str) -> Reply:
        self._require_bucket(bucket)
        policy = self.iam_policies.get(unquote(bucket), {"bindings": []})
        return Reply(200, {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{bucket}", "etag": "CAE=",
                           "version": 1, **policy})

    def _set_iam(self, request: Request, bucket: str) -> Reply:
        self._require_bucket(bucket)
        self.iam_policies[unquote(bucket)] = {"bindings": (request.body or {}).get("bindings", [])}
        return self._get_iam(request, bucket)

    # --- objects -------------------------------------------------------------------------------------------

    def _store(self, bucket: str, name: str, data: bytes, metadata: Dict[str, Any]) -> Dict[str, Any]:
        crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        resource = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/1",
            "bucket": bucket,
            "name": name,
            "size": str(len(data)),
            "generation": "1",
            "metageneration": "1",
            "contentType": metadata.get("contentType", "application/octet-stream"),
            "crc32c": crc,
            "md5Hash": md5,
            "storageClass": "STANDARD",
        }
        self.objects[(bucket, name)] = data
        self.object_metadata[(bucket, name)] = resource
        return resource

    def _upload(self, request: Request, bucket: str) -> Reply:
        self._require_bucket(bucket)
        kind = request.query.get("uploadType")
        if kind == "media":
            return Reply(200, self._store(bucket, request.query["name"], request.raw, {}))
        if kind == "multipart":
            metadata, data = _split_multipart(request)
            return Reply(200, self._store(bucket, metadata["name"], data, metadata))
        if kind == "resumable":
            upload_id = f"session-{next(self._ids)}"
            metadata = request.body or {}
            name = metadata.get("name") or request.query.get("name", "")
            self._sessions[upload_id] = {"bucket": bucket, "name": name, "metadata": metadata, "data": b""}
            location = (f"{self.url}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
                        f"?uploadType=resumable&upload_id={upload_id}")
            return Reply(200, {}, headers={"Location": location})
        raise HttpError(400, f"uploadType {kind!r} is not supported")

    def _resumable_chunk(self, request: Request, bucket: str) -> Reply:
        session = self._sessions.get(request.query.get("upload_id", ""))
        if session is None:
            raise HttpError(404, "No such upload session.")
        session["data"] += request.raw
        content_range = request.headers.get("content-range", "")  # "bytes 0-99/200", "bytes 0-99/*", "bytes */200"
        total = content_range.rpartition("/")[2]
        if total != "*" and int(total) == len(session["data"]):
            return Reply(200, self._store(session["bucket"], session["name"], session["data"], session["metadata"]))
        return Reply(308, None, headers={"Range": f"bytes=0-{len(session['data']) - 1}"})

    def _object(self, bucket: str, name: str) -> Tuple[Dict[str, Any], bytes]:
        key = (unquote(bucket), unquote(name))
        if key not in self.objects:
            raise HttpError(404, f"No such object: {key[0]}/{key[1]}")
        return self.object_metadata[key], self.objects[key]

    def _get_object(self, request: Request, bucket: str, name: str) -> Reply:
        if request.query.get("alt") == "media":
            return self._download(request, bucket, name)
        resource, _ = self._object(bucket, name)
        return Reply(200, resource)

    def _download(self, request: Request, bucket: str, name: str) -> Reply:
        resource, data = self._object(bucket, name)
        return Reply(
            200,
            data,
            content_type="application/octet-stream",
            headers={"X-Goog-Hash": f"crc32c={resource['crc32c']},md5={resource['md5Hash']}",
                     "X-Goog-Generation": resource["generation"]},
        )


def _split_multipart(request: Request) -> Tuple[Dict[str, Any], bytes]:
    """The JSON metadata part and the data part of a multipart/related upload."""
    import json

    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + request.raw)
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise HttpError(400, f"a multipart upload has 2 parts, got {len(parts)}")
    metadata = json.loads(parts[0].get_payload(decode=True))
    return metadata, parts[1].get_payload(decode=True)
