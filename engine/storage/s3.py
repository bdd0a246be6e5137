"""The S3 backend: any S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, Backblaze B2,
DigitalOcean Spaces, GCS in interoperability mode) through boto3.

Results are uploaded from their local file by boto3's transfer manager: a multipart
upload in parts of ``part_size`` bytes above that size, read from the file part by
part, so a video is never held in memory whole. Credentials are found the boto3 way
(the environment, a profile, an instance role) unless given (the upstream toolkit's
``S3_ACCESS_KEY``/``S3_SECRET_KEY``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from ..errors import StorageError
from .base import ObjectInfo, Storage

__all__ = ["S3Storage", "MAX_LINK_TTL"]

#: The longest a presigned link may live (S3's SigV4 limit: 7 days).
MAX_LINK_TTL = 7 * 86400
_MISSING = {"404", "NoSuchKey", "NotFound"}
_REFUSED_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                        "InvalidToken", "ExpiredToken", "403"}


class S3Storage(Storage):
    """Objects in an S3-compatible bucket, under ``prefix``.

    Args:
        bucket: the bucket's name.
        scratch: the local folder where renders write before the upload.
        endpoint_url: the S3 API's address; None = AWS.
        region: the bucket's region; None = boto3's default.
        prefix: put before every key, as a folder (``zoomreel`` or ``zoomreel/`` puts
            videos at ``zoomreel/videos/...``).
        public_url: where the bucket's objects are public (the bucket's own URL or a CDN
            in front of it): links are ``public_url/<key>`` instead of presigned.
        access_key, secret_key: credentials; None = boto3's own search.
        part_size: multipart threshold and part size, bytes.
        timeout: seconds to connect, and to wait for each answer.
    """

    kind = "s3"

    def __init__(self, bucket: str, *, scratch: Path, endpoint_url: str | None = None,
                 region: str | None = None, prefix: str = "", public_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 part_size: int = 8 * 2**20, timeout: float = 10.0) -> None:
        import boto3  # heavy: loaded only when S3 storage is configured
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.scratch = Path(scratch)
        self.endpoint_url = endpoint_url
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.public_url = (public_url or "").rstrip("/") or None
        session = boto3.session.Session(aws_access_key_id=access_key or None,
                                        aws_secret_access_key=secret_key or None,
                                        region_name=region or None)
        config = Config(
            connect_timeout=timeout, read_timeout=max(timeout, 30.0),
            retries={"max_attempts": 3, "mode": "standard"}, signature_version="s3v4",
            # other S3-compatible servers name buckets in the path, not the host
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            max_pool_connections=32)
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        # check() answers /health: one quick try, so a bucket that hangs cannot hold it
        self._probe: Any = session.client("s3", endpoint_url=endpoint_url, config=config.merge(
            Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1})))
        self.transfer = TransferConfig(multipart_threshold=part_size,
                                       multipart_chunksize=part_size, max_concurrency=4)

    def describe(self) -> str:
        where = "AWS"
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)  # never echo credentials in a URL
            where = f"{parts.scheme}://{parts.hostname}" + (
                f":{parts.port}" if parts.port else "")
        return f"S3 bucket {self.bucket!r} at {where}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """botocore's failures as StorageError: the storage, the step, the cause."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except S3UploadFailedError as exc:  # its text names our local file: use its cause
            cause = exc.__context__
            text = (_client_cause(cause) if isinstance(cause, ClientError)
                    else str(exc).rpartition(": ")[2])
            raise StorageError(f"{self.describe()}: {what}: {text}") from exc
        except ClientError as exc:
            raise StorageError(f"{self.describe()}: {what}: {_client_cause(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{self.describe()}: {what}: {_core_cause(exc)}") from exc

    def save_file(self, key: str, path: Path, content_type: str) -> None:
        with self._errors("uploading a file"):
            self.client.upload_file(str(path), self.bucket, self._key(key),
                                    ExtraArgs={"ContentType": content_type},
                                    Config=self.transfer)
        Path(path).unlink(missing_ok=True)

    def save_bytes(self, key: str, data: bytes, content_type: str) -> None:
        with self._errors("uploading"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   ContentType=content_type)

    def load_bytes(self, key: str) -> bytes | None:
        with self._errors("reading"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _missing(exc):
                    return None
                raise
            with contextlib.closing(answer["Body"]) as body:
                return bytes(body.read())

    def delete(self, key: str) -> None:
        with self._errors("deleting"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def info(self, key: str) -> ObjectInfo | None:
        with self._errors("looking up"):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _missing(exc):
                    return None
                raise
        return ObjectInfo(int(head["ContentLength"]), head["LastModified"].timestamp(),
                          str(head.get("ETag", "")).strip('"'))

    def open(self, key: str, start: int, length: int) -> BinaryIO:
        if length <= 0:
            return io.BytesIO(b"")
        with self._errors("reading"):
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                            Range=f"bytes={start}-{start + length - 1}")
        body: BinaryIO = answer["Body"]  # read() and close(): what a WSGI server needs
        return body

    def list(self, prefix: str) -> Iterator[tuple[str, float]]:
        with self._errors("listing"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"][len(self.prefix):], item["LastModified"].timestamp()

    def check(self) -> None:
        with self._errors("checking the bucket"):
            self._probe.head_bucket(Bucket=self.bucket)

    def link(self, key: str, ttl: float) -> str | None:
        if self.public_url:
            return f"{self.public_url}/{quote(self._key(key))}"
        try:
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=max(1, min(int(ttl), MAX_LINK_TTL)))
        except Exception:  # no credentials to sign with: the route's link is used instead
            return None
        return url


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(
        exc.response.get("Error", {}).get("Code")) in _MISSING


def _client_cause(exc: Any) -> str:
    """What an S3 error answer says, for a person."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get(
        "HTTPStatusCode", "?"))
    if code in ("NoSuchBucket", "404"):
        return "no such bucket (create it, or fix the bucket's name or region)"
    if code in _REFUSED_CREDENTIALS:
        return (f"the credentials were refused ({code}): check S3_ACCESS_KEY/S3_SECRET_KEY "
                "or the AWS credentials, and the bucket's permissions")
    message = str(error.get("Message") or "").strip()
    return f"{code}: {message}" if message else code


def _core_cause(exc: Exception) -> str:
    """What a failure without an answer means, for a person."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError):
        return ("no credentials: set S3_ACCESS_KEY and S3_SECRET_KEY (or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance role)")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError
                  | ConnectionClosedError):
        return f"unreachable ({exc})"
    return str(exc).replace("\n", " ")
