"""The Prometheus observer, read back through the HTTP text exposition on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from smppgw import __version__
from smppgw.esme.observe import Observer
from smppgw.gateway.metrics import MetricsServer, PrometheusObserver


async def http_get(
    port: int, path: str = "/metrics", method: str = "GET", accept: str = ""
) -> tuple[str, dict[str, str], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"Accept: {accept}\r\n" if accept else ""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return status_line, headers, body


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a text exposition (labels in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    raise AssertionError(f"no sample {name}{labels}")


def feed(o: Observer) -> None:
    o.bind_state("smpp1", "smpp1/trx-0", "connecting")
    o.bind_state("smpp1", "smpp1/trx-0", "bound")
    o.bind_state("smpp1", "smpp1/trx-1", "connecting")
    o.bind_state("smpp2", "smpp2/trx-0", "bound")
    o.bind_state("smpp2", "smpp2/trx-0", "bound")  # repeated: no double count
    o.window("smpp1", "smpp1/trx-0", 7)
    o.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.02)
    o.submit_result("smpp1", "smpp1/trx-0", "ESME_ROK", 0.3)
    o.submit_result("smpp1", "smpp1/trx-0", "ESME_RTHROTTLED", 0.01)
    o.submit_unknown("smpp2", "smpp2/trx-0", "timeout")
    o.token_wait("smpp1", 0.015)
    o.throttled("smpp1")
    o.reconnect("smpp2", "smpp2/trx-0", 1.5)
    o.dlr_received("DELIVRD", matched=True)
    o.dlr_received("DELIVRD", matched=True)
    o.dlr_received("UNDELIV", matched=False)
    o.dlr_latency(4.0)
    o.unmatched_dlrs(3)
    o.mo_received()
    o.store_commit(0.002, 40)
    o.queue_depth("queued", 12)
    o.message_final("delivered")
    o.webhook_delivery(ok=True)
    o.webhook_delivery(ok=False)
    o.intake_request("submit", ok=True)
    o.intake_request("submit", ok=False)


async def test_every_fact_is_exposed_under_its_metric() -> None:
    observer = PrometheusObserver()
    feed(observer)
    async with MetricsServer(observer.registry, "127.0.0.1", 0) as server:
        status, headers, text = await http_get(server.port)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("text/plain")
    assert int(headers["content-length"]) == len(text.encode())

    assert sample(text, "smppgw_info", version=__version__) == 1
    assert sample(text, "smppgw_binds", server="smpp1", state="bound") == 1
    assert sample(text, "smppgw_binds", server="smpp1", state="connecting") == 1
    assert sample(text, "smppgw_binds", server="smpp2", state="bound") == 1
    assert sample(text, "smppgw_window_in_flight", server="smpp1", bind="smpp1/trx-0") == 7
    submits = {"server": "smpp1", "bind": "smpp1/trx-0"}
    assert sample(text, "smppgw_submits_total", **submits, status="ESME_ROK") == 2
    assert sample(text, "smppgw_submits_total", **submits, status="ESME_RTHROTTLED") == 1
    assert sample(text, "smppgw_submit_response_seconds_count") == 3
    assert sample(text, "smppgw_submit_response_seconds_bucket", le="0.025") == 2
    assert sample(text, "smppgw_submit_response_seconds_sum") == pytest.approx(0.33)
    assert sample(text, "smppgw_submit_unknown_total", server="smpp2", reason="timeout") == 1
    assert sample(text, "smppgw_token_wait_seconds_count", server="smpp1") == 1
    assert sample(text, "smppgw_token_wait_seconds_bucket", server="smpp1", le="0.01") == 0
    assert sample(text, "smppgw_token_wait_seconds_bucket", server="smpp1", le="0.02") == 1
    assert sample(text, "smppgw_throttled_total", server="smpp1") == 1
    assert sample(text, "smppgw_reconnects_total", server="smpp2") == 1
    assert sample(text, "smppgw_dlrs_total", stat="DELIVRD", matched="true") == 2
    assert sample(text, "smppgw_dlrs_total", stat="UNDELIV", matched="false") == 1
    assert sample(text, "smppgw_dlr_latency_seconds_count") == 1
    assert sample(text, "smppgw_dlr_latency_seconds_bucket", le="5.0") == 1
    assert sample(text, "smppgw_unmatched_dlrs") == 3
    assert sample(text, "smppgw_mo_messages_total") == 1
    assert sample(text, "smppgw_store_commit_seconds_count") == 1
    assert sample(text, "smppgw_store_commit_records_total") == 40
    assert sample(text, "smppgw_queue_depth", state="queued") == 12
    assert sample(text, "smppgw_messages_final_total", status="delivered") == 1
    assert sample(text, "smppgw_webhook_deliveries_total", result="ok") == 1
    assert sample(text, "smppgw_webhook_deliveries_total", result="failed") == 1
    assert sample(text, "smppgw_intake_requests_total", op="submit", result="ok") == 1
    assert sample(text, "smppgw_intake_requests_total", op="submit", result="error") == 1


def test_a_bind_moving_between_states_is_counted_once() -> None:
    observer = PrometheusObserver()
    for state in ("connecting", "bound", "closed", "connecting", "bound"):
        observer.bind_state("smpp1", "smpp1/trx-0", state)
    text = generate_latest(observer.registry).decode()
    assert sample(text, "smppgw_binds", server="smpp1", state="bound") == 1
    assert sample(text, "smppgw_binds", server="smpp1", state="connecting") == 0
    assert sample(text, "smppgw_binds", server="smpp1", state="closed") == 0


def test_each_observer_has_its_own_registry() -> None:
    first, second = PrometheusObserver(), PrometheusObserver()
    first.mo_received()
    assert sample(generate_latest(first.registry).decode(), "smppgw_mo_messages_total") == 1
    assert sample(generate_latest(second.registry).decode(), "smppgw_mo_messages_total") == 0


def test_an_observer_can_use_a_given_registry() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    observer.throttled("smpp2")
    assert observer.registry is registry
    assert registry.get_sample_value("smppgw_throttled_total", {"server": "smpp2"}) == 1


async def test_openmetrics_is_served_when_asked_for() -> None:
    observer = PrometheusObserver()
    async with MetricsServer(observer.registry, "127.0.0.1", 0) as server:
        _, headers, text = await http_get(server.port, accept="application/openmetrics-text")
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", "HTTP/1.1 404 Not Found"),
        ("GET", "/metricsx", "HTTP/1.1 404 Not Found"),
        ("POST", "/metrics", "HTTP/1.1 405 Method Not Allowed"),
        ("HEAD", "/metrics", "HTTP/1.1 200 OK"),
        ("GET", "/metrics?name[]=x", "HTTP/1.1 200 OK"),
    ],
)
async def test_other_paths_and_methods(method: str, path: str, status: str) -> None:
    observer = PrometheusObserver()
    async with MetricsServer(observer.registry, "127.0.0.1", 0) as server:
        line, headers, body = await http_get(server.port, path, method)
    assert line == status
    if method == "HEAD":
        assert body == ""
        assert int(headers["content-length"]) > 0


async def test_a_garbage_request_is_closed_without_an_answer() -> None:
    observer = PrometheusObserver()
    async with MetricsServer(observer.registry, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\x01garbage\r\n\r\n")
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        # The server still serves.
        status, _, _ = await http_get(server.port)
    assert status == "HTTP/1.1 200 OK"
