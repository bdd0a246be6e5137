"""Where uploads and finished videos are kept: the data dir, or an S3-compatible bucket.

One small interface (base.py), two backends beside it: :class:`LocalStorage`, the data
dir's folders (the default), and :class:`S3Storage`, any S3-compatible bucket through
boto3 (AWS S3, MinIO, R2, B2, Spaces...). With a bucket, workers on many machines share
nothing but Redis and the bucket.

Objects are named by keys: ``videos/<filename>``, ``uploads/<name>`` and, while a long
job renders in chunks, ``chunks/<id>/<n><ext>`` (:func:`video_key`, :func:`upload_key`,
:func:`chunk_key`).
"""

from __future__ import annotations

from .base import (
    POSTER_EXTENSION,
    UPLOADS,
    VIDEOS,
    ObjectInfo,
    Storage,
    chunk_key,
    poster_name,
    upload_key,
    video_key,
)
from .local import LocalStorage
from .s3 import S3Storage

__all__ = ["LocalStorage", "ObjectInfo", "S3Storage", "Storage", "UPLOADS", "VIDEOS",
           "chunk_key", "upload_key", "video_key", "POSTER_EXTENSION", "poster_name"]
