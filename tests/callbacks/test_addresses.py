"""No server-side request forgery (API.md 1.1): every refused range, as an IP literal and as a name
that resolves to it (a resolver stub stands for DNS; `localhost` is real), and the allow list."""

import socket
from typing import Any

import pytest

from executor.callbacks.addresses import RefusedAddress, allowed_networks, check_url, resolve

REFUSED = {
    "loopback": "127.0.0.1",
    "loopback-elsewhere": "127.8.9.10",
    "private-10": "10.1.2.3",
    "private-172": "172.16.5.4",
    "private-192": "192.168.0.1",
    "unique-local": "fd00::1",
    "link-local": "169.254.169.254",
    "link-local-6": "fe80::1",
    "shared": "100.64.0.1",
    "multicast": "224.0.0.1",
    "multicast-6": "ff02::1",
    "unspecified": "0.0.0.0",
    "unspecified-6": "::",
    "reserved": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "loopback-6": "::1",
    "mapped-loopback": "::ffff:127.0.0.1",
    "mapped-private": "::ffff:10.0.0.1",
    "documentation": "192.0.2.1",
}


def url_of(address: str) -> str:
    return f"http://[{address}]:8080/hook" if ":" in address else f"http://{address}:8080/hook"


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_an_ip_literal_in_a_refused_range_is_refused_at_once(address: str) -> None:
    with pytest.raises(RefusedAddress, match="range the service does not call"):
        check_url(url_of(address), ())


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_a_name_that_resolves_into_a_refused_range_is_refused_at_delivery(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_resolver(monkeypatch, {"hooks.example.com": ["93.184.216.34", address]})
    assert check_url("https://hooks.example.com/hook", ()) == ("hooks.example.com", 443)  # a name: not yet
    with pytest.raises(RefusedAddress):
        resolve("hooks.example.com", 443, ())  # one refused address fails the name


def test_a_name_that_resolves_only_to_public_addresses_is_connected_to_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub_resolver(monkeypatch, {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert str(resolve("hooks.example.com", 443, ())) == "93.184.216.34"


def test_localhost_is_refused_by_its_real_resolution() -> None:
    with pytest.raises(RefusedAddress):
        resolve("localhost", 80, ())


def test_the_allow_list_opens_exactly_its_networks() -> None:
    allowed = allowed_networks(["127.0.0.1/32", " 10.0.0.0/8 "])
    check_url("http://127.0.0.1:9000/hook", allowed)
    check_url("http://10.200.0.1/hook", allowed)
    with pytest.raises(RefusedAddress):
        check_url("http://127.0.0.2:9000/hook", allowed)
    with pytest.raises(ValueError):
        allowed_networks(["not-a-network"])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://93.184.216.34/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http:///hook", "must name a host"),
        ("http://user:secret@93.184.216.34/hook", "without credentials"),
        ("http://93.184.216.34:99999/hook", "invalid port"),
        ("http://93.184.216.34/" + "a" * 2048, "2048 characters"),
    ],
)
def test_a_url_that_is_not_a_plain_http_one_is_refused(url: str, words: str) -> None:
    with pytest.raises(RefusedAddress, match=words):
        check_url(url, ())


def stub_resolver(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """An /etc/hosts of our own: each name resolves to its addresses, in order."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
