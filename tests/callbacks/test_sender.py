"""One delivery attempt against a receiver on loopback: delivered on 2xx, retried on 500, no redirect
followed, at most 64 KiB of the answer read, no attempt longer than its time; and the signature."""

import socket
import threading
import time

import pytest

from executor.callbacks import sender
from executor.callbacks.addresses import allowed_networks
from executor.callbacks.sender import send
from executor.callbacks.signing import signature, verify
from tests.callbacks.receiver import receiving

LOOPBACK = allowed_networks(["127.0.0.1/32"])


def test_a_2xx_is_delivered_with_the_body_and_headers_sent() -> None:
    with receiving() as receiver:
        attempt = send(receiver.url(), b'{"a": 1}', {"X-Executor-Event": "job.completed"}, LOOPBACK)
    assert (attempt.delivered, attempt.status) == (True, 200)
    (arrival,) = receiver.arrivals
    assert (arrival.body, arrival.headers["X-Executor-Event"]) == (b'{"a": 1}', "job.completed")
    assert arrival.headers["Content-Type"] == "application/json"


def test_a_500_is_not_delivered_and_is_retried() -> None:
    with receiving() as receiver:
        receiver.scripts["/hook"] = [500]
        attempt = send(receiver.url(), b"{}", {}, LOOPBACK)
    assert (attempt.delivered, attempt.retry, attempt.status) == (False, True, 500)


def test_a_redirect_is_not_followed() -> None:
    with receiving() as receiver:
        receiver.scripts["/hook"] = [302]
        receiver.redirect_to = receiver.url("/elsewhere")
        attempt = send(receiver.url(), b"{}", {}, LOOPBACK)
    assert (attempt.delivered, attempt.status) == (False, 302)
    assert [arrival.path for arrival in receiver.arrivals] == ["/hook"]  # /elsewhere never asked


def test_a_large_answer_is_read_no_further_than_64_kib() -> None:
    """The receiver offers 64 MiB; the sender closes the connection after its 64 KiB, so the receiver
    can write no more than the sockets' buffers hold (a few MiB), far from the whole answer."""
    with receiving() as receiver:
        receiver.answer_bytes = 64 * 1024 * 1024
        began = time.monotonic()
        attempt = send(receiver.url(), b"{}", {}, LOOPBACK)
        assert receiver.answered.wait(10)
    assert attempt.delivered and time.monotonic() - began < 5
    assert receiver.answer_sent < receiver.answer_bytes // 4


def test_a_receiver_that_drips_its_answer_is_cut_at_the_attempts_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender, "ATTEMPT_TIMEOUT_S", 1.0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            try:
                connection.sendall(b"X-Slow: 1\r\n")  # each line well inside the socket timeout
            except OSError:
                break
            time.sleep(0.2)
        connection.close()

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    began = time.monotonic()
    attempt = send(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", b"{}", {}, LOOPBACK)
    elapsed = time.monotonic() - began
    stop.set()
    listener.close()
    assert (attempt.delivered, attempt.retry) == (False, True)
    assert elapsed < 3, elapsed


def test_a_refused_address_is_never_connected_to_and_not_retried() -> None:
    with receiving() as receiver:
        attempt = send(receiver.url(), b"{}", {}, ())  # loopback not opened
    assert (attempt.delivered, attempt.retry, attempt.status) == (False, False, None)
    assert "refused" in attempt.error and receiver.arrivals == []


def test_a_signature_verifies_only_for_its_body_secret_and_time() -> None:
    body, now = b'{"job_id": "x"}', int(time.time())
    header = signature("secret", body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify("secret", body, header)
    assert not verify("other", body, header)
    assert not verify("secret", body + b" ", header)
    assert not verify("secret", body, signature("secret", body, now - 3600))  # replayed an hour later
    assert not verify("secret", body, "v1=deadbeef")
