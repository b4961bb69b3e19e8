"""The node's HTTP server bounds slow and greedy clients (media_node.server)."""

from __future__ import annotations

import socket
import time

import httpx


def closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes `sock` (reading and discarding), None if not by `limit`."""
    began = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - began < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - began
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - began
    return None


def test_headers_trickled_slowly_are_cut_off(node_with) -> None:  # type: ignore[no-untyped-def]
    """uvicorn has no header timeout of its own: a trickling client held a connection for ever."""
    node = node_with(VC_GENERAL_HTTP_HEADER_TIMEOUT_SECONDS="0.5")
    with socket.create_connection(("127.0.0.1", node.port)) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
        took = closed_after(slow, 3.0)
    assert took is not None and took < 1.5


def test_the_deadline_applies_to_each_request_of_a_keep_alive_connection(node_with) -> None:  # type: ignore[no-untyped-def]
    node = node_with(
        VC_GENERAL_HTTP_HEADER_TIMEOUT_SECONDS="0.5", VC_GENERAL_HTTP_KEEP_ALIVE_SECONDS="30"
    )
    with socket.create_connection(("127.0.0.1", node.port)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in conn.recv(4096)
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # the second request stalls
        took = closed_after(conn, 3.0)
    assert took is not None and took < 1.5


def test_a_prompt_client_is_served_and_long_requests_still_work(node_with) -> None:  # type: ignore[no-untyped-def]
    node = node_with(VC_GENERAL_HTTP_HEADER_TIMEOUT_SECONDS="0.5")
    with httpx.Client() as client:
        assert client.get(f"{node.http}/healthz").status_code == 200
        time.sleep(0.8)  # an idle keep-alive connection past the header deadline is still fine
        assert client.get(f"{node.http}/healthz").status_code == 200


def test_a_head_growing_past_the_bound_is_refused(node_with) -> None:  # type: ignore[no-untyped-def]
    """h11 buffers at most MAX_HEADER_BYTES of an incomplete head (memory per connection)."""
    node = node_with()
    with socket.create_connection(("127.0.0.1", node.port)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        reply = b""
        for _ in range(40):  # 40 x 1 kB of one header line, in separate segments
            try:
                conn.sendall(b"X-Junk-" + b"j" * 1024 + b": y\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.01)
        conn.settimeout(2)
        try:
            reply = conn.recv(4096)
        except (TimeoutError, ConnectionResetError):
            pass
    assert reply.startswith(b"HTTP/1.1 400")


def test_connections_beyond_the_limit_get_503(node_with) -> None:  # type: ignore[no-untyped-def]
    node = node_with(VC_GENERAL_HTTP_MAX_CONNECTIONS="10")
    idle = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(10)]
    try:
        time.sleep(0.2)
        assert httpx.get(f"{node.http}/healthz").status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{node.http}/healthz").status_code == 200
