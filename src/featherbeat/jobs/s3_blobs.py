"""Blobs in an S3-compatible bucket: the scale-out's ``BlobStore`` with ``FEATHERBEAT_BLOB_URL=s3://``.

Any S3-compatible store through boto3 (endpoint from the usual ``AWS_ENDPOINT_URL`` /
credentials chain). boto3 is an optional extra, imported only when this backend is built.
Expiry is the bucket's lifecycle rule, not ours (docs/scaling.md has the JSON).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any

from featherbeat.config import ConfigError
from featherbeat.jobs.blobs import CHUNK, BlobStore, BlobTooLargeError, check_key, copy_chunks


class S3Blobs(BlobStore):
    """Blobs in an S3-compatible bucket (expiry is the bucket's lifecycle rule, not ours)."""

    def __init__(self, url: str, max_bytes: int = 5 << 30) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(
                f"FEATHERBEAT_BLOB_URL must look like s3://bucket/prefix, got {url!r}"
            )
        try:
            import boto3  # optional: only this mode needs it
            from botocore.exceptions import ClientError
        except ModuleNotFoundError:
            raise ConfigError(
                "FEATHERBEAT_BLOB_URL=s3://... needs boto3: pip install boto3"
            ) from None
        from boto3.s3.transfer import TransferConfig

        self._client_error = ClientError
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
        self.max_bytes = max_bytes
        self.s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        # No transfer threads: our reader is not seekable, so with threads s3transfer keeps up
        # to 10 parts of 8 MiB in memory (a 100 MB upload peaked at +110 MB RSS); in the
        # caller's thread it holds one part (+9 MB).
        self._transfer = TransferConfig(use_threads=False)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def check(self) -> None:
        """Fail at start with one clear line (a missing bucket, wrong endpoint or credentials),
        not at the first upload. Reads a key that does not exist: ``NoSuchKey`` means bucket
        and credentials answer. ``AccessDenied`` is an error too: without s3:ListBucket S3
        answers 403 for every missing key, so a deleted upload would be an error, not absent."""
        from botocore.exceptions import BotoCoreError

        where = f"s3://{self.bucket}/{self.prefix}"
        try:
            self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}.featherbeat-probe")
        except self._client_error as exc:
            error = getattr(exc, "response", {}).get("Error", {})
            code = str(error.get("Code", ""))
            if code in ("NoSuchKey", "404"):
                return
            hint = (
                "the credentials need s3:GetObject, PutObject, DeleteObject on the prefix and "
                "s3:ListBucket on the bucket"
                if code in ("AccessDenied", "403")
                else "does the bucket exist, and are AWS_ENDPOINT_URL and the credentials right?"
            )
            raise ConfigError(
                f"cannot use FEATHERBEAT_BLOB_URL={where} ({code}: {error.get('Message', '')}); "
                + hint
            ) from None
        except BotoCoreError as exc:  # no credentials, endpoint unreachable ...
            raise ConfigError(
                f"cannot use FEATHERBEAT_BLOB_URL={where} ({exc}); "
                "are AWS_ENDPOINT_URL and the credentials right?"
            ) from None

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int:
        counter = _CountingReader(fp, self.max_bytes, key)
        self.s3.upload_fileobj(counter, self.bucket, self._key(key), Config=self._transfer)
        return counter.total

    def _missing(self, exc: Exception) -> bool:
        # HEAD answers a bare 404 ("NotFound"), GET a "NoSuchKey" error: both mean absent.
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NotFound", "NoSuchKey")

    def size(self, key: str) -> int | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except self._client_error as exc:
            if self._missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def iter(self, key: str) -> Iterator[bytes] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self._client_error as exc:
            if self._missing(exc):
                return None
            raise
        return _body_chunks(body)

    def get(self, key: str, out: IO[bytes]) -> bool:
        return copy_chunks(self.iter(key), out)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))


def _body_chunks(body: Any) -> Iterator[bytes]:
    """The object in CHUNK pieces; the HTTP connection goes back to the pool even when the
    reader stops early (a client hanging up on a download)."""
    try:
        while chunk := body.read(CHUNK):
            yield chunk
    finally:
        body.close()


class _CountingReader:
    """File wrapper that enforces the size cap while boto3 streams it."""

    def __init__(self, fp: IO[bytes], limit: int, key: str) -> None:
        self.fp, self.limit, self.key, self.total = fp, limit, key, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        self.total += len(data)
        if self.total > self.limit:
            raise BlobTooLargeError(f"blob {self.key!r} is larger than {self.limit} bytes")
        return data
