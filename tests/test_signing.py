"""Signed download links: the unit rules, then real links against a real service."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from loopback import LoopbackServer, send
from service_helpers import SMALL, Serve, ServeFactory, jpeg, probe
from waiting import eventually

from zoomreel.frontends.rest.signing import SECRET_FILE, URLSigner, load_or_create_secret


def _params(query: str) -> tuple[str, str]:
    values = parse_qs(query)
    return values["expires"][0], values["signature"][0]


@pytest.mark.unit
def test_a_link_opens_its_file_until_it_expires() -> None:
    now = [1_000_000.0]
    signer = URLSigner(b"secret", ttl=60, clock=lambda: now[0])
    expires, signature = _params(signer.query("video_a.mp4"))
    assert expires == "1000060"
    assert signer.check("video_a.mp4", expires, signature) is None
    assert signer.check("video_b.mp4", expires, signature) == "the link's signature does not match"
    assert signer.check("video_a.mp4", "1000061", signature) == (
        "the link's signature does not match")
    assert signer.check("video_a.mp4", expires, signature[:-1] + "A") is not None
    assert signer.check("video_a.mp4", None, signature) == "the link is not signed"
    assert signer.check("video_a.mp4", "-5", signature) == "the link is not signed"
    now[0] += 61
    assert signer.check("video_a.mp4", expires, signature) == "the link has expired"
    # Another server's secret never matches.
    assert URLSigner(b"other", ttl=60, clock=lambda: 0).check(
        "video_a.mp4", expires, signature) is not None


@pytest.mark.unit
@pytest.mark.parametrize("expires", ["²", "١٢", "１２", " 12", "12 ", "+12", "1_000", "9" * 13])
def test_an_expiry_that_is_not_ascii_digits_is_not_signed(expires: str) -> None:
    # "²".isdigit() is true and int("²") raises: this was a 500
    assert URLSigner(b"secret").check("video_a.mp4", expires, "abc") == "the link is not signed"


@pytest.mark.unit
@pytest.mark.parametrize("signature", ["é", "a\udc80", "a b", "a=", "A" * 129])
def test_a_signature_that_is_not_base64url_does_not_match(signature: str) -> None:
    assert URLSigner(b"secret").check("video_a.mp4", "12", signature) == (
        "the link's signature does not match")
    assert URLSigner(b"secret").check("v\udc80.mp4", "12", "abc") == (
        "the link's signature does not match")


@pytest.mark.unit
def test_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64
    assert load_or_create_secret(tmp_path / "data") == first
    assert [p.name for p in (tmp_path / "data").iterdir()] == [SECRET_FILE]  # no temp left


@pytest.fixture(scope="module")
def done(module_serve_factory: ServeFactory,
         image_server: LoopbackServer) -> tuple[Serve, dict]:
    """A service with one finished video (uploaded), its webhook sent to image_server."""
    image_server.routes["/signing/hook"] = lambda h: send(h, 204)
    serve = module_serve_factory(workers=1)
    r = serve.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg(320, 180))},
                   data={**{k: str(v) for k, v in SMALL.items()},
                         "webhook_url": image_server.base + "/signing/hook"})
    assert r.status_code == 202, r.text
    answer = serve.wait(r.json()["job_id"], timeout=240)
    assert answer["response"]["job_status"] == "done", answer
    return serve, answer["response"]["response"]


@pytest.mark.system
def test_signed_link_works_without_the_key_with_range(done: tuple[Serve, dict]) -> None:
    serve, result = done
    url = result["download_url"]
    parts = urlsplit(url)
    assert parts.path == f"/v1/storage/download/{result['filename']}"
    assert int(_params(parts.query)[0]) > time.time() + 86000  # the default day
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "video/mp4"
    assert probe(whole.content)["width"] == SMALL["width"]
    part = requests.get(url, headers={"Range": "bytes=10-109"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(whole.content)}"
    assert part.content == whole.content[10:110]
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(whole.content)
    # The plain address still needs the key.
    bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
    assert requests.get(bare, timeout=30).status_code == 401
    assert requests.get(bare, headers=serve.headers, timeout=30).status_code == 200


@pytest.mark.system
def test_webhook_body_carries_a_working_signed_link(done: tuple[Serve, dict],
                                                   image_server: LoopbackServer) -> None:
    posts = eventually(lambda: image_server.received("/signing/hook", "POST"), timeout=60,
                       interval=0.1, what="the webhook")
    body = json.loads(posts[0].body)
    url = body["response"]["response"]["download_url"]
    assert "signature=" in url
    assert requests.get(url, headers={"Range": "bytes=0-9"}, timeout=30).status_code == 206


@pytest.mark.system
def test_tampered_expired_and_other_file_links_get_403(done: tuple[Serve, dict]) -> None:
    serve, result = done
    url = result["download_url"]
    parts = urlsplit(url)
    expires, signature = _params(parts.query)
    base = f"{parts.scheme}://{parts.netloc}/v1/storage/download/"

    def get(filename: str, **query: str) -> requests.Response:
        return requests.get(base + filename + "?" + urlencode(query), timeout=30,
                            headers={"Range": "bytes=0-99"})

    name = result["filename"]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    secret = (serve.data_dir / SECRET_FILE).read_bytes().strip()
    past = URLSigner(secret, ttl=10, clock=lambda: time.time() - 3600)
    old_expires, old_signature = _params(past.query(name))
    other_name = name.replace(".mp4", "x.mp4")
    other_expires, other_signature = _params(URLSigner(secret).query(other_name))
    refused = {
        "tampered signature": get(name, expires=expires, signature=flipped),
        "later expiry": get(name, expires=str(int(expires) + 3600), signature=signature),
        "expired": get(name, expires=old_expires, signature=old_signature),
        "another file's link": get(name, expires=other_expires, signature=other_signature),
        "this link on another file": get(other_name, expires=expires, signature=signature),
        "no expiry": get(name, signature=signature),
    }
    for why, answer in refused.items():
        assert answer.status_code == 403, (why, answer.status_code, answer.text)
        assert answer.json()["message"].startswith("Forbidden"), why
        assert b"ftyp" not in answer.content, why  # nothing of the video
    assert "expired" in refused["expired"].json()["message"]
    # A signature opens the download route only: other /v1 routes still want the key.
    query = "?" + parts.query
    assert requests.get(f"{serve.url}/v1/toolkit/authenticate{query}",
                        timeout=30).status_code == 401
    assert requests.post(f"{serve.url}/v1/toolkit/jobs/status{query}",
                         timeout=30).status_code == 401
    # Traversal with a signature serves nothing either.
    traversal = requests.get(f"{base}..%2fapi_key{query}", timeout=30)
    assert traversal.status_code in (403, 404) and b"test-key" not in traversal.content


@pytest.mark.system
def test_link_lifetime_comes_from_the_environment(serve_factory) -> None:
    serve = serve_factory(workers=0, env={"ZOOMREEL_SIGNED_URL_TTL": "120"})
    secret = (serve.data_dir / SECRET_FILE).read_bytes().strip()
    assert stat.S_IMODE((serve.data_dir / SECRET_FILE).stat().st_mode) == 0o600
    # The service signs with the file's secret: a link made from it is accepted (the
    # route then says 404, the file does not exist, instead of 403).
    query = URLSigner(secret).query("video_none.mp4")
    assert requests.get(f"{serve.url}/v1/storage/download/video_none.mp4?{query}",
                        timeout=30).status_code == 404
    serve.kill9()
    bad = Serve(serve.data_dir, workers=0, env={"ZOOMREEL_SIGNED_URL_TTL": "soon"})
    with pytest.raises(RuntimeError, match="ZOOMREEL_SIGNED_URL_TTL"):
        bad.start(timeout=30)
    bad.kill9()
