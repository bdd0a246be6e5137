"""zoomreel.storage: the local folder and an S3-compatible bucket (moto's server on
loopback), behind one interface, and what each says when it cannot be used."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from loopback import free_port
from s3server import CREDENTIALS, REGION, CheckingS3, MotoS3

from zoomreel.errors import StorageError
from zoomreel.storage import LocalStorage, S3Storage, Storage, upload_key, video_key

PART = 5 * 2**20  # S3's smallest multipart part


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 finds the test server's credentials in the environment (as a deployment's
    would), and no profile of this machine's."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def _s3(s3: MotoS3, tmp_path: Path, **options: object) -> S3Storage:
    return S3Storage(s3.bucket(), scratch=tmp_path / "work", endpoint_url=s3.endpoint,
                     region=REGION, part_size=PART, **options)  # type: ignore[arg-type]


@pytest.fixture(params=[pytest.param("local", marks=pytest.mark.unit),
                        pytest.param("s3", marks=pytest.mark.system)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "data")
    else:
        yield _s3(request.getfixturevalue("s3"), tmp_path, prefix="deploy-a/")


def test_bytes_round_trip_and_missing_objects(storage: Storage) -> None:
    storage.check()
    key = upload_key("abc.img")
    assert storage.load_bytes(key) is None and storage.info(key) is None
    storage.save_bytes(key, b"\xff\xd8 an image", "application/octet-stream")
    assert storage.load_bytes(key) == b"\xff\xd8 an image"
    info = storage.info(key)
    assert info is not None and info.size == 11
    assert [k for k, _ in storage.list("uploads/")] == [key]
    assert list(storage.list("videos/")) == []
    storage.delete(key)
    storage.delete(key)  # nothing to do the second time
    assert storage.load_bytes(key) is None and list(storage.list("uploads/")) == []


def test_a_file_is_stored_whole_and_read_by_range(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(2 * PART + 12345)  # three parts in a bucket
    storage.scratch.mkdir(parents=True, exist_ok=True)
    path = storage.scratch / "video_1_x.mp4"
    path.write_bytes(data)
    key = video_key(path.name)
    storage.save_file(key, path, "video/mp4")
    info = storage.info(key)
    assert info is not None and info.size == len(data)
    with storage.open(key, PART - 10, 100) as stream:
        assert stream.read(100) == data[PART - 10:PART + 90]
    if isinstance(storage, S3Storage):
        assert not path.exists()  # uploaded from the scratch file, which is then removed
        assert info.version.endswith("-3")  # S3's ETag of a three-part upload
    else:
        assert storage.local_path(key) == path  # the scratch folder is its final place


@pytest.mark.system
def test_s3_objects_carry_their_content_type_and_prefix(s3: MotoS3, tmp_path: Path) -> None:
    storage = _s3(s3, tmp_path, prefix="deploy-a")
    path = tmp_path / "v.webm"
    path.write_bytes(b"webm bytes")
    storage.save_file(video_key("v.webm"), path, "video/webm")
    assert s3.keys(storage.bucket) == ["deploy-a/videos/v.webm"]
    head = s3.client().head_object(Bucket=storage.bucket, Key="deploy-a/videos/v.webm")
    assert head["ContentType"] == "video/webm"


@pytest.mark.system
def test_a_presigned_link_is_fetched_by_plain_http(s3: MotoS3, tmp_path: Path) -> None:
    storage = _s3(s3, tmp_path)
    storage.save_bytes(video_key("a.mp4"), bytes(range(256)) * 40, "video/mp4")
    link = storage.link(video_key("a.mp4"), 600)
    assert link is not None and link.startswith(f"{s3.endpoint}/{storage.bucket}/videos/a.mp4?")
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=600" in link
    whole = requests.get(link, timeout=30)
    assert whole.status_code == 200 and whole.content == bytes(range(256)) * 40
    assert whole.headers["Content-Type"] == "video/mp4"
    part = requests.get(link, headers={"Range": "bytes=250-261"}, timeout=30)
    assert part.status_code == 206 and part.content == bytes([250, 251, 252, 253, 254, 255,
                                                              0, 1, 2, 3, 4, 5])
    # S3 signs links for 7 days at most: a longer TTL is cut to that
    assert "X-Amz-Expires=604800" in (storage.link(video_key("a.mp4"), 10**9) or "")


def public_read(s3: MotoS3, bucket: str) -> None:
    """Make ``bucket``'s objects readable by anyone, as a public bucket's deployer does."""
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}))


@pytest.mark.system
def test_the_public_url_form(s3: MotoS3, tmp_path: Path) -> None:
    bucket = s3.bucket()
    public_read(s3, bucket)
    storage = S3Storage(bucket, scratch=tmp_path, endpoint_url=s3.endpoint, region=REGION,
                        prefix="p/", public_url=f"{s3.endpoint}/{bucket}/")
    storage.save_bytes(video_key("b c.mp4"), b"public bytes", "video/mp4")
    link = storage.link(video_key("b c.mp4"), 600)
    assert link == f"{s3.endpoint}/{storage.bucket}/p/videos/b%20c.mp4"
    assert requests.get(link, timeout=30).content == b"public bytes"


@pytest.mark.unit
def test_the_local_folder_has_no_link(tmp_path: Path) -> None:
    assert LocalStorage(tmp_path).link(video_key("a.mp4"), 600) is None


@pytest.mark.system
@pytest.mark.parametrize("what", ["no bucket", "unreachable"])
def test_a_bucket_that_cannot_be_used_is_named_with_the_cause(
        s3: MotoS3, tmp_path: Path, what: str) -> None:
    endpoint = s3.endpoint if what == "no bucket" else f"http://127.0.0.1:{free_port()}"
    storage = S3Storage("zr-none-such", scratch=tmp_path, endpoint_url=endpoint, region=REGION)
    with pytest.raises(StorageError) as raised:
        storage.check()
    message = str(raised.value)
    assert message.startswith(f"S3 bucket 'zr-none-such' at {endpoint}: checking the bucket: ")
    assert ("no such bucket" if what == "no bucket" else "unreachable") in message
    assert "\n" not in message


@pytest.mark.system
def test_refused_credentials_are_said_so(s3_checking: CheckingS3, tmp_path: Path) -> None:
    storage = S3Storage("zr-bucket", scratch=tmp_path, endpoint_url=s3_checking.endpoint,
                        region=REGION, access_key="AKIAWRONG", secret_key="wrong")
    for step in (storage.check, lambda: storage.save_bytes("uploads/x", b"x", "image/jpeg")):
        with pytest.raises(StorageError, match="the credentials were refused"):
            step()
    path = tmp_path / "v.mp4"
    path.write_bytes(b"video")
    with pytest.raises(StorageError, match="uploading a file: the credentials were refused"
                       r" \(InvalidAccessKeyId\)") as raised:
        storage.save_file(video_key("v.mp4"), path, "video/mp4")
    assert str(tmp_path) not in str(raised.value)  # no server folder in a job's error
    assert path.exists()  # kept for the next try
