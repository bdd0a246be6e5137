"""zoomreel.net.webhooks against real receivers on loopback, and the retry schedule."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopback import LOOPBACK_FORMS, LoopbackServer, free_port, send
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from zoomreel.errors import InputError
from zoomreel.net.webhooks import (
    RETRY_AFTER_CAP,
    RETRY_SCHEDULE,
    Delivery,
    check_secret,
    deliver,
    encode_payload,
    retry_delay,
    sign_headers,
)

pytestmark = pytest.mark.unit

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAYLOAD = {
    "code": 200,
    "job_id": "5b1c0f0e-1f4e-4a36-9d53-1f9a3c1f0b7e",
    "response": {"job_status": "done", "download_url": "http://x/v.mp4", "note": "é ✓"},
    "message": "success",
}


@pytest.fixture
def receiver() -> Iterator[LoopbackServer]:
    """A webhook receiver on 127.0.0.1; paths without a route answer 204."""
    r = LoopbackServer(missing_status=204)
    yield r
    r.close()


def post(url: str, secret: str | None = SECRET, **kwargs: object) -> Delivery:
    return deliver(url, PAYLOAD, msg_id="msg_abc", secret=secret, allow_private=True, **kwargs)  # type: ignore[arg-type]


# -- delivery --------------------------------------------------------------------


def test_signed_delivery_verifies_with_the_standard_library(receiver: LoopbackServer) -> None:
    result = post(receiver.url("/hook"))
    assert result == Delivery(ok=True, retry=False, status=204)
    _, path, headers, body = receiver.requests[0]
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_abc"
    assert Webhook(SECRET).verify(body, headers) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"done", b"DONE"), headers)


def test_a_receiver_that_fails_first_gets_it_later_with_the_same_id(
    receiver: LoopbackServer,
) -> None:
    answers = iter([500, 503, 200])
    receiver.routes["/hook"] = lambda h: send(h, next(answers))
    results = [post(receiver.url("/hook")) for _ in range(3)]
    assert [(r.ok, r.retry, r.status) for r in results] == [
        (False, True, 500),
        (False, True, 503),
        (True, False, 200),
    ]
    assert {headers["webhook-id"] for _, _, headers, _ in receiver.requests} == {"msg_abc"}
    _, _, headers, body = receiver.requests[-1]
    assert Webhook(SECRET).verify(body, headers) == PAYLOAD


def test_unsigned_delivery_carries_id_and_time_but_no_signature(receiver: LoopbackServer) -> None:
    assert post(receiver.url("/hook"), secret=None).ok
    _, _, headers, body = receiver.requests[0]
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "msg_abc"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert json.loads(body) == PAYLOAD


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_and_throttling_are_retried(receiver: LoopbackServer, status: int) -> None:
    receiver.routes["/hook"] = lambda h: send(h, status)
    result = post(receiver.url("/hook"))
    assert (result.ok, result.retry, result.status, result.gone) == (False, True, status, False)
    assert f"HTTP {status}" in (result.error or "")


def test_retry_after_seconds_is_parsed(receiver: LoopbackServer) -> None:
    receiver.routes["/hook"] = lambda h: send(h, 429, Retry_After="120")
    result = post(receiver.url("/hook"))
    assert result.retry and result.retry_after == 120


def test_retry_after_http_date_is_parsed(receiver: LoopbackServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=600)
    receiver.routes["/hook"] = lambda h: send(h, 503, Retry_After=format_datetime(when, True))
    result = post(receiver.url("/hook"))
    assert result.retry and result.retry_after is not None
    assert 590 <= result.retry_after <= 601


def test_unusable_retry_after_is_ignored(receiver: LoopbackServer) -> None:
    receiver.routes["/hook"] = lambda h: send(h, 503, Retry_After="soon")
    result = post(receiver.url("/hook"))
    assert result.retry and result.retry_after is None


def test_410_stops_for_good(receiver: LoopbackServer) -> None:
    receiver.routes["/hook"] = lambda h: send(h, 410)
    result = post(receiver.url("/hook"))
    assert (result.ok, result.retry, result.gone, result.status) == (False, False, True, 410)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 422])
def test_other_4xx_are_not_retried(receiver: LoopbackServer, status: int) -> None:
    receiver.routes["/hook"] = lambda h: send(h, status)
    result = post(receiver.url("/hook"))
    assert (result.ok, result.retry, result.gone, result.status) == (False, False, False, status)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed_nor_retried(receiver: LoopbackServer, status: int) -> None:
    receiver.routes["/hook"] = lambda h: send(h, status, Location=receiver.url("/elsewhere"))
    result = post(receiver.url("/hook"))
    assert (result.ok, result.retry, result.status) == (False, False, status)
    assert "redirect" in (result.error or "")
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_connection_refused_is_retried() -> None:
    result = post(f"http://127.0.0.1:{free_port()}/hook")
    assert result.retry and not result.ok and result.status is None
    assert "refused the connection" in (result.error or "")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (the backlog holds them)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_receiver_that_never_answers_is_retried_after_the_timeout(silent_port: int) -> None:
    port = silent_port
    result = post(f"http://127.0.0.1:{port}/hook", timeout=0.3)
    assert result.retry and not result.ok and result.status is None
    assert "timed out" in (result.error or "")


def test_a_receiver_that_trickles_is_cut_off_by_the_overall_timeout() -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                # Each byte comes well within the per-read time-out, the whole never does.
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                    if stop.wait(0.05):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return

        threading.Thread(target=trickle, daemon=True).start()
        result = post(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", timeout=0.5)
        stop.set()
    # Without the overall time-out the headers would arrive whole (after ~50 s) and the
    # delivery would succeed: "timed out" shows it was cut off.
    assert result.retry and "timed out" in (result.error or "")




@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_forms_are_refused_without_a_request(receiver: LoopbackServer, host: str) -> None:
    url = receiver.url("/hook", host=host)
    result = deliver(url, PAYLOAD, msg_id="msg_abc", secret=SECRET)
    assert (result.ok, result.retry, result.status) == (False, False, None)
    assert (result.error or "").startswith("webhook_url")
    assert receiver.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://u:p@93.184.215.14/", "file:///x"])
def test_refused_urls_are_not_retried(url: str) -> None:
    result = deliver(url, PAYLOAD, msg_id="m", secret=None)
    assert not result.retry and not result.ok and result.error


# -- signing ------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification and its reference libraries.
    headers = sign_headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        SECRET,
        timestamp=datetime.fromtimestamp(1614265330, UTC),
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_signing_time_in_another_zone_is_the_same_instant() -> None:
    instant = datetime(2026, 1, 1, 12, tzinfo=UTC)
    shifted = instant.astimezone(timezone(timedelta(hours=5)))
    assert sign_headers("m", b"{}", SECRET, timestamp=instant) == sign_headers(
        "m", b"{}", SECRET, timestamp=shifted
    )


def test_payload_encoding_is_compact_and_deterministic() -> None:
    body = encode_payload(PAYLOAD)
    assert body == encode_payload(dict(PAYLOAD))
    assert body.startswith(b'{"code":200,"job_id":"5b1c')
    assert json.loads(body) == PAYLOAD
    body.decode("ascii")


# -- retry schedule ---------------------------------------------------------------


class Midpoint:
    """A jitter source that always picks the middle: the schedule without jitter."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def test_schedule_starts_fast_grows_and_lasts_about_a_day() -> None:
    assert list(RETRY_SCHEDULE[:7]) == [5, 30, 120, 600, 1800, 3600, 7200]
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)
    assert 20 * 3600 <= sum(RETRY_SCHEDULE) <= 28 * 3600


def test_retry_delay_follows_the_schedule_and_then_stops() -> None:
    delays = [retry_delay(n, rng=Midpoint()) for n in range(1, len(RETRY_SCHEDULE) + 1)]
    assert delays == list(RETRY_SCHEDULE)
    assert retry_delay(len(RETRY_SCHEDULE) + 1) is None
    assert retry_delay(100, retry_after=5) is None
    with pytest.raises(ValueError):
        retry_delay(0)


@given(st.integers(1, len(RETRY_SCHEDULE)), st.none() | st.floats(0, 1e9))
def test_retry_delay_jitters_within_bounds_and_honours_retry_after(
    attempt: int, retry_after: float | None
) -> None:
    base = RETRY_SCHEDULE[attempt - 1]
    delay = retry_delay(attempt, retry_after)
    assert delay is not None
    assert base * 0.8 <= delay <= max(base * 1.2, RETRY_AFTER_CAP)
    if retry_after is not None:
        assert delay >= min(retry_after, RETRY_AFTER_CAP)
    else:
        assert delay <= base * 1.2


def test_jitter_spreads_delays() -> None:
    assert len({retry_delay(3) for _ in range(20)}) > 1


@pytest.mark.parametrize("secret", ["", "whsec_", "garbage!!", "whsec_c2hvcnQ=", "QUJD" * 8])
def test_malformed_secrets_are_refused_up_front(secret):
    with pytest.raises(InputError, match="whsec_"):
        check_secret(secret)


def test_a_proper_secret_passes_the_check():
    check_secret("whsec_" + base64.b64encode(b"0123456789abcdef0123").decode())
