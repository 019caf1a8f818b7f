"""The Virtuous client on httpx.MockTransport: paths, bodies, statuses, hooks, secrecy."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from workers.errors import (
    AmbiguousOutcomeError,
    AuthError,
    NotFoundError,
    RejectedError,
    ThrottledError,
    TransientError,
    VirtuousError,
)
from workers.virtuous.client import RateLimitInfo, VirtuousClient, encode, parse_rate_limit

BASE = "https://api.virtuoustest.org"
TOKEN = "s3cr3t-T0KEN-do-not-leak-4242"
GIFT = {"id": 987654, "amount": "25.00"}

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **kwargs: Any) -> VirtuousClient:
    return VirtuousClient(BASE, TOKEN, transport=httpx.MockTransport(handler), **kwargs)


class Recorder:
    """A fake Virtuous that answers one canned response and keeps every request."""

    def __init__(self, status: int = 200, body: Any = GIFT, headers: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body, self.headers = status, body, headers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.body, bytes | str):
            return httpx.Response(self.status, content=self.body, headers=self.headers)
        return httpx.Response(self.status, json=self.body, headers=self.headers)


PAYLOAD = {"transactionSource": "WeGive", "transactionId": "tx-1", "amount": "10.00"}
BATCH = b'{"transactionSource":"WeGive","transactions":[],"createImport":true}'

# (call, method, raw path with query, body sent, label)
CASES: list[tuple[Callable[[VirtuousClient], Any], str, str, bytes | None, str]] = [
    (
        lambda c: c.post_gift_transactions(BATCH),
        "POST",
        "/api/v2/Gift/Transactions",
        BATCH,
        "POST /api/v2/Gift/Transactions",
    ),
    (
        lambda c: c.post_gift_transaction(PAYLOAD),
        "POST",
        "/api/v2/Gift/Transaction",
        encode(PAYLOAD),
        "POST /api/v2/Gift/Transaction",
    ),
    (lambda c: c.create_gift(PAYLOAD), "POST", "/api/Gift", encode(PAYLOAD), "POST /api/Gift"),
    (lambda c: c.get_gift(987654), "GET", "/api/Gift/987654", None, "GET /api/Gift/{id}"),
    (
        lambda c: c.update_gift(987654, GIFT),
        "PUT",
        "/api/Gift/987654",
        encode(GIFT),
        "PUT /api/Gift/{id}",
    ),
    (
        lambda c: c.find_gift("We Give", "tx/55?x"),
        "GET",
        "/api/Gift/We%20Give/tx%2F55%3Fx",
        None,
        "GET /api/Gift/{transactionSource}/{transactionId}",
    ),
    (
        lambda c: c.reversing_transaction(PAYLOAD),
        "POST",
        "/api/Gift/ReversingTransaction",
        encode(PAYLOAD),
        "POST /api/Gift/ReversingTransaction",
    ),
    (
        lambda c: c.create_recurring_gift(PAYLOAD),
        "POST",
        "/api/RecurringGift",
        encode(PAYLOAD),
        "POST /api/RecurringGift",
    ),
    (
        lambda c: c.get_recurring_gift(31337),
        "GET",
        "/api/RecurringGift/31337",
        None,
        "GET /api/RecurringGift/{id}",
    ),
    (
        lambda c: c.update_recurring_gift(31337, GIFT),
        "PUT",
        "/api/RecurringGift/31337",
        encode(GIFT),
        "PUT /api/RecurringGift/{id}",
    ),
    (
        lambda c: c.query_gifts({"groups": []}, skip=2000, take=1000),
        "POST",
        "/api/Gift/Query/FullGift?skip=2000&take=1000",
        b'{"groups":[]}',
        "POST /api/Gift/Query/FullGift",
    ),
    (
        lambda c: c.query_recurring_gifts({"groups": []}),
        "POST",
        "/api/RecurringGift/Query?skip=0&take=1000",
        b'{"groups":[]}',
        "POST /api/RecurringGift/Query",
    ),
    (
        lambda c: c.create_contact(PAYLOAD),
        "POST",
        "/api/Contact",
        encode(PAYLOAD),
        "POST /api/Contact",
    ),
    (lambda c: c.get_contact(4711), "GET", "/api/Contact/4711", None, "GET /api/Contact/{id}"),
    (
        lambda c: c.find_contact("WeGive", "donor 9"),
        "GET",
        "/api/Contact/WeGive/donor%209",
        None,
        "GET /api/Contact/{referenceSource}/{referenceId}",
    ),
    (
        lambda c: c.contact_transaction(PAYLOAD),
        "POST",
        "/api/Contact/Transaction",
        encode(PAYLOAD),
        "POST /api/Contact/Transaction",
    ),
    (
        lambda c: c.create_segment({"name": "S"}),
        "POST",
        "/api/Segment",
        b'{"name":"S"}',
        "POST /api/Segment",
    ),
    (
        lambda c: c.create_project({"name": "P"}),
        "POST",
        "/api/Project",
        b'{"name":"P"}',
        "POST /api/Project",
    ),
    (
        lambda c: c.create_webhook({"url": "https://x/y"}),
        "POST",
        "/api/Webhook",
        b'{"url":"https://x/y"}',
        "POST /api/Webhook",
    ),
]
IDS = [case[4] for case in CASES]


@pytest.mark.parametrize(("call", "method", "path", "body", "label"), CASES, ids=IDS)
def test_every_method_sends_its_method_path_and_body(
    call: Callable[[VirtuousClient], Any], method: str, path: str, body: bytes | None, label: str
) -> None:
    fake = Recorder()
    calls: list[tuple[str, int | None, float]] = []
    with client(fake, on_call=lambda *a: calls.append(a)) as c:
        result = call(c)
    (request,) = fake.requests
    assert request.method == method
    assert request.url.raw_path.decode() == path
    assert str(request.url).startswith(BASE)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    if body is None:
        assert request.content == b""
    else:
        assert request.content == body
        assert request.headers["Content-Type"] == "application/json"
    assert result is None or result == GIFT
    assert calls[0][:2] == (label, 200)
    assert calls[0][2] >= 0


def test_calls_that_answer_nothing_return_none_and_empty_bodies_are_empty_dicts() -> None:
    with client(Recorder(200, b"")) as c:
        c.post_gift_transactions(BATCH)  # typed -> None: nothing comes back, nothing raised
        c.contact_transaction(PAYLOAD)
        assert c.create_segment({"name": "S"}) == {}
        assert c.get_gift(1) == {}
    with client(Recorder(200, 42)) as c:
        assert c.create_project({"name": "P"}) == {"value": 42}


def test_batch_body_goes_out_byte_for_byte() -> None:
    fake = Recorder()
    odd = b'{ "transactions" : [ {"amount":"1.10"} ] ,"x":"\xc3\xa9"}'
    with client(fake) as c:
        c.post_gift_transactions(odd)
        c.post_gift_transactions(odd)
    assert [r.content for r in fake.requests] == [odd, odd]


def test_json_bodies_are_compact_and_keep_money_exact() -> None:
    body = encode({"amount": Decimal("10.10"), "name": "Zoë", "list": [1, 2]})
    assert body == '{"amount":"10.10","name":"Zoë","list":[1,2]}'.encode()


def test_find_returns_none_on_404_with_or_without_body() -> None:
    for body in (b"", b"Not Found", {"message": "No gift"}):
        with client(Recorder(404, body)) as c:
            assert c.find_gift("WeGive", "tx-1") is None
            assert c.find_contact("WeGive", "d-1") is None
    with client(Recorder(200, GIFT)) as c:
        assert c.find_gift("WeGive", "tx-1") == GIFT


STATUS_CASES: list[tuple[int, Any, dict[str, str], type[VirtuousError]]] = [
    (400, {"message": "Invalid"}, {}, RejectedError),
    (401, b"", {}, AuthError),
    (403, b"Forbidden", {}, AuthError),
    (404, b"", {}, NotFoundError),
    (408, b"", {}, TransientError),
    (409, {"message": "Conflict"}, {}, RejectedError),
    (422, {"message": "Bad"}, {}, RejectedError),
    (429, b"", {"Retry-After": "7"}, ThrottledError),
    (500, b"<html>oops</html>", {}, TransientError),
    (502, b"", {}, TransientError),
    (503, {"message": "down"}, {}, TransientError),
    (504, b"", {}, TransientError),
    (418, b"teapot", {}, VirtuousError),
]


@pytest.mark.parametrize(("status", "body", "headers", "error"), STATUS_CASES)
def test_statuses_map_onto_the_hierarchy(
    status: int, body: Any, headers: dict[str, str], error: type[VirtuousError]
) -> None:
    with client(Recorder(status, body, headers)) as c, pytest.raises(error) as info:
        c.create_gift(PAYLOAD)
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.endpoint == "POST /api/Gift"
    assert f"POST /api/Gift -> {status}" in str(info.value)


def test_rejected_parses_virtuous_json_with_model_state() -> None:
    body = {
        "message": "The request is invalid.",
        "modelState": {"transactions[3].amount": ["Designations must sum to the gift amount."]},
    }
    with client(Recorder(400, body)) as c, pytest.raises(RejectedError) as info:
        c.post_gift_transactions(BATCH)
    err = info.value
    assert err.message == "The request is invalid."
    assert err.model_state == {
        "transactions[3].amount": ["Designations must sum to the gift amount."]
    }
    assert not err.already_submitted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"Unknown projectCode P-9", "Unknown projectCode P-9"),
        (b"", "Bad Request"),
        (b"   ", "Bad Request"),
        ({"Message": "Pascal case"}, "Pascal case"),
        ({"ModelState": {"giftType": "Unknown giftType"}}, "giftType: Unknown giftType"),
        ('"just a string"', "just a string"),
        (["a", "b"], "a; b"),
        (b"{not json", "{not json"),
    ],
)
def test_rejected_parses_error_bodies_tolerantly(body: Any, message: str) -> None:
    with client(Recorder(400, body)) as c, pytest.raises(RejectedError) as info:
        c.post_gift_transactions(BATCH)
    assert info.value.message == message


@pytest.mark.parametrize(
    "message",
    [
        "Transaction tx-1 has already been submitted.",
        "A gift with this transactionId already exists",
        "Duplicate transactionId",
    ],
)
def test_already_submitted_is_recognised(message: str) -> None:
    with client(Recorder(400, {"message": message})) as c, pytest.raises(RejectedError) as info:
        c.post_gift_transaction(PAYLOAD)
    assert info.value.already_submitted
    in_state = {"message": "invalid", "modelState": {"transactionId": [message]}}
    with client(Recorder(400, in_state)) as c, pytest.raises(RejectedError) as info:
        c.post_gift_transaction(PAYLOAD)
    assert info.value.already_submitted


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "1.5"}, 1.5),
        (
            {
                "Retry-After": "Sun, 22 Nov 2026 10:00:30 GMT",
                "Date": "Sun, 22 Nov 2026 10:00:00 GMT",
            },
            30.0,
        ),
        ({"X-RateLimit-Reset": "42"}, 42.0),
        ({"Retry-After": "soon", "X-RateLimit-Reset": "9"}, 9.0),
        ({}, 60.0),
    ],
)
def test_throttled_carries_retry_after(headers: dict[str, str], retry_after: float) -> None:
    with client(Recorder(429, b"", headers)) as c, pytest.raises(ThrottledError) as info:
        c.post_gift_transactions(BATCH)
    assert info.value.retry_after == pytest.approx(retry_after)


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("connection refused"), TransientError),
        (httpx.ConnectTimeout("connect timed out"), TransientError),
        (httpx.PoolTimeout("no connection free"), TransientError),
        (httpx.ReadTimeout("read timed out"), AmbiguousOutcomeError),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            AmbiguousOutcomeError,
        ),
        (httpx.ReadError("connection reset by peer"), AmbiguousOutcomeError),
        (httpx.WriteTimeout("write timed out"), AmbiguousOutcomeError),
    ],
)
def test_transport_failures_are_transient_or_ambiguous(
    exc: Exception, error: type[VirtuousError]
) -> None:
    calls: list[tuple[str, int | None, float]] = []
    limits: list[RateLimitInfo] = []
    with (
        client(raising(exc), on_call=lambda *a: calls.append(a), on_rate_limit=limits.append) as c,
        pytest.raises(error) as info,
    ):
        c.post_gift_transactions(BATCH)
    assert type(info.value) is error
    assert info.value.status is None
    assert info.value.__cause__ is exc
    assert [call[:2] for call in calls] == [("POST /api/v2/Gift/Transactions", None)]
    assert limits == []  # no answer, nothing to observe


@pytest.mark.parametrize("status", [200, 400, 401, 404, 429, 500])
def test_rate_limit_hook_sees_every_answer(status: int) -> None:
    headers = {
        "X-RateLimit-Limit": "10000",
        "X-RateLimit-Remaining": "9876",
        "X-RateLimit-Reset": "1800",
    }
    seen: list[RateLimitInfo] = []
    fake = Recorder(status, b"", headers)
    with client(fake, on_rate_limit=seen.append) as c, contextlib.suppress(VirtuousError):
        c.post_gift_transactions(BATCH)
    # A 429's Remaining is not a count of what the others spend (Retry-After governs it).
    remaining = None if status == 429 else 9876
    assert seen == [RateLimitInfo(limit=10000, remaining=remaining, reset_seconds=1800.0)]


def test_a_failing_hook_does_not_fail_the_call() -> None:
    def boom(*args: Any) -> None:
        raise RuntimeError("redis is down")

    with client(Recorder(200, GIFT), on_rate_limit=boom, on_call=boom) as c:
        assert c.create_gift(PAYLOAD) == GIFT


def test_endpoint_labels_never_hold_ids() -> None:
    labels: list[str] = []
    with client(Recorder(200, GIFT), on_call=lambda label, *_: labels.append(label)) as c:
        for case in CASES:
            case[0](c)
    assert len(set(labels)) == len(CASES)
    for label in labels:
        for value in ("987654", "31337", "4711", "We Give", "We%20Give", "tx", "donor", "skip"):
            assert value not in label


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, RateLimitInfo(None, None, None)),
        (
            {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "59.5",
            },
            RateLimitInfo(5000, 0, 59.5),
        ),
        (
            {
                "X-RateLimit-Limit": "lots",
                "X-RateLimit-Remaining": "-3",
                "X-RateLimit-Reset": "nan",
            },
            RateLimitInfo(None, None, None),
        ),
        ({"X-RateLimit-Remaining": "12, 12"}, RateLimitInfo(None, 12, None)),
        ({"X-RateLimit-Remaining": "7.0"}, RateLimitInfo(None, 7, None)),
    ],
)
def test_parse_rate_limit_is_tolerant(headers: dict[str, str], expected: RateLimitInfo) -> None:
    assert parse_rate_limit(httpx.Headers(headers)) == expected


def test_parse_rate_limit_turns_an_epoch_reset_into_seconds_by_virtuous_clock() -> None:
    date = "Sun, 22 Nov 2026 10:00:00 GMT"
    epoch = 1795341600  # 2026-11-22T10:00:00Z
    for value in (epoch + 90, (epoch + 90) * 1000):
        info = parse_rate_limit(httpx.Headers({"X-RateLimit-Reset": str(value), "Date": date}))
        assert info.reset_seconds == pytest.approx(90.0)
    # Without a Date the epoch is passed on; the limiter reads it against the Redis clock.
    info = parse_rate_limit(httpx.Headers({"X-RateLimit-Reset": str(epoch + 90)}))
    assert info.reset_seconds == epoch + 90


def test_timeouts_are_split_between_connect_and_read() -> None:
    c = VirtuousClient(BASE, TOKEN, timeout=45.0)
    timeout = c._http.timeout
    assert (timeout.connect, timeout.read, timeout.pool) == (10.0, 45.0, 10.0)
    c.close()


ALL_FAILURES: list[tuple[Handler, int | None]] = [
    (Recorder(400, {"message": "bad", "modelState": {"a": ["b"]}}), 400),
    (Recorder(401, b"Authorization has been denied for this request."), 401),
    (Recorder(404, b""), 404),
    (Recorder(429, b"", {"Retry-After": "3"}), 429),
    (Recorder(500, b"boom"), 500),
    (raising(httpx.ConnectError("refused")), None),
    (raising(httpx.ReadTimeout("timed out")), None),
]


@pytest.mark.parametrize(("handler", "status"), ALL_FAILURES)
def test_no_error_str_or_repr_holds_the_token(handler: Handler, status: int | None) -> None:
    with client(handler) as c, pytest.raises(VirtuousError) as info:
        c.get_gift(5)
    err = info.value
    assert err.status == status
    chain: list[BaseException] = [err]
    if err.__cause__ is not None:
        chain.append(err.__cause__)
    for exc in chain:
        for text in (str(exc), repr(exc), json.dumps(vars(exc), default=repr)):
            assert TOKEN not in text
    assert TOKEN not in repr(c)
    assert TOKEN not in repr(c._http.headers)


@pytest.fixture
def mute_server() -> Iterator[tuple[int, list[bytes], dict[str, str]]]:
    """A loopback server that reads each request and then hangs up or says nothing."""
    srv = socket.create_server(("127.0.0.1", 0))
    lines: list[bytes] = []
    mode = {"then": "hang up"}
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            lines.append(conn.recv(65536).split(b"\r\n")[0])
            if mode["then"] == "hang up":
                conn.close()
            else:
                held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], lines, mode
    srv.close()
    for conn in held:
        conn.close()


def test_real_sockets_classify_like_the_mocks(
    mute_server: tuple[int, list[bytes], dict[str, str]],
) -> None:
    port, lines, mode = mute_server
    with VirtuousClient(f"http://127.0.0.1:{port}", TOKEN, timeout=0.3) as c:
        with pytest.raises(AmbiguousOutcomeError, match="RemoteProtocolError"):
            c.find_gift("We/Give", "a b")
        mode["then"] = "say nothing"
        with pytest.raises(AmbiguousOutcomeError, match="ReadTimeout"):
            c.find_gift("We/Give", "a b")
    assert lines == [b"GET /api/Gift/We%2FGive/a%20b HTTP/1.1"] * 2
    free = socket.create_server(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    with (
        VirtuousClient(f"http://127.0.0.1:{closed_port}", TOKEN) as c,
        pytest.raises(TransientError, match="ConnectError"),
    ):
        c.get_gift(1)


def test_only_documented_rate_limit_headers_are_read() -> None:
    # Virtuous documents Limit, Remaining and Reset (a unix time); a Reset-After header is
    # no part of the contract, so its value must change nothing.
    base = {
        "X-RateLimit-Limit": "600",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "1795429906",
        "Date": "Mon, 23 Nov 2026 10:31:16 GMT",
    }
    plain = parse_rate_limit(httpx.Headers(base))
    extra = parse_rate_limit(httpx.Headers({**base, "X-RateLimit-Reset-After": "0.25"}))
    assert plain == extra
    assert (plain.limit, plain.remaining) == (600, 2)
    assert plain.reset_seconds == 30.0  # read against the answer's Date
