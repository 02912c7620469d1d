"""DNS rebinding: only requests naming the server itself are answered, reads and writes alike."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from flagscope.server import create_app
from flagscope.server._hosts import check_allowed_hosts, host_of, is_loopback
from otlp_payloads import traces_protobuf
from producers import flag_event, readable_span
from serve_process import ServeProcess, serving

PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with serving("--allow-host", "flags.internal") as running:
        yield running


def _stored(server: ServeProcess) -> int:
    stored: int = server.get_json("/api/health")["stored"]
    return stored


@pytest.mark.parametrize("path", ["/api/flags", "/api/events", "/api/health", "/"])
def test_a_read_for_a_rebound_name_is_403(server: ServeProcess, path: str) -> None:
    status, body = server.request("GET", path, headers={"host": f"rebind.example:{server.port}"})
    assert status == 403
    assert "--allow-host" in json.loads(body)["error"]


def test_a_write_for_a_rebound_name_is_403_and_stores_nothing(server: ServeProcess) -> None:
    before = _stored(server)
    body = traces_protobuf([readable_span(events=[flag_event("injected")])])
    status, _ = server.request(
        "POST", "/v1/traces", body=body, headers={**PROTOBUF, "host": "rebind.example"}
    )
    assert status == 403
    assert _stored(server) == before


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "flags.internal"]
)
def test_loopback_names_and_allowed_names_are_answered(server: ServeProcess, host: str) -> None:
    status, _ = server.request(
        "GET", "/api/health", headers={"host": host.format(port=server.port)}
    )
    assert status == 200


@pytest.mark.parametrize(
    "origin", ["http://rebind.example", "null", "https://evil.test:4318", "file://"]
)
def test_a_cross_origin_write_from_a_browser_is_403(server: ServeProcess, origin: str) -> None:
    before = _stored(server)
    body = traces_protobuf([readable_span(events=[flag_event("cross-origin")])])
    status, _ = server.request(
        "POST", "/v1/traces", body=body, headers={**PROTOBUF, "origin": origin}
    )
    assert status == 403
    assert _stored(server) == before


def test_the_page_s_own_origin_may_write(server: ServeProcess) -> None:
    body = traces_protobuf([readable_span(events=[flag_event("same-origin")])])
    status, _ = server.request(
        "POST", "/v1/traces", body=body, headers={**PROTOBUF, "origin": server.url}
    )
    assert status == 200


@pytest.mark.parametrize("header", ["rebind.example:port", "[::1", "a:b:c"])
def test_a_malformed_host_header_is_no_name(header: str) -> None:
    assert host_of(header) is None


def test_a_bad_allowed_host_is_refused_when_the_app_is_built() -> None:
    with pytest.raises(ValueError, match="not a host name"):
        create_app(allowed_hosts=["flags.internal:4318"])
    with pytest.raises(TypeError, match="not one str"):
        check_allowed_hosts("flags.internal")


def test_bound_to_every_address_the_startup_line_says_who_can_reach_it() -> None:
    with serving("--host", "0.0.0.0", "--allow-host", "dev-box") as running:
        assert "reachable from other machines" in running.banner
        assert "0.0.0.0, dev-box, localhost" in running.banner
        status, _ = running.request("GET", "/api/health", headers={"host": "dev-box"})
        assert status == 200
        status, _ = running.request("GET", "/api/health", headers={"host": "rebind.example"})
        assert status == 403


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_non_loopback_hosts_are_recognised_for_the_warning(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
