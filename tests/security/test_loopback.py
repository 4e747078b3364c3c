"""loopback=True: an isolated sandbox asks for a network of its own, and gets exactly that: its
loopback is up, so it can serve and reach itself over TCP and UDP, while the host, other
sandboxes and the outside stay unreachable."""

from __future__ import annotations

import socket

import pytest

from faas_sdk import ExecutionPlatform, Mode


TRY = """
import errno, socket
def attempt(fn):
    try:
        return fn()
    except OSError as exc:
        return errno.errorcode[exc.errno]
"""

SERVE_ITSELF = TRY + """
def tcp():
    server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()
    client = socket.create_connection(server.getsockname(), timeout=2)
    conn, _ = server.accept(); client.sendall(b'tcp')
    return conn.recv(3).decode()
def udp():
    a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); a.bind(('::1', 0))
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'udp', a.getsockname())
    return a.recv(3).decode()
_server = socket.socket(); _server.bind(('127.0.0.1', 0)); _server.listen()
(attempt(tcp), attempt(udp), [n for _, n in socket.if_nameindex()], _server.getsockname()[1])
"""


@pytest.fixture(scope="module")
def platform_():
    with ExecutionPlatform(warm_pool_size=0) as p:
        yield p



@pytest.fixture(scope="module")
def host_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_a_loopback_sandbox_serves_and_reaches_only_itself(platform_, mode, host_port):
    with platform_.create_sandbox(mode=mode, loopback=True) as sb, \
            platform_.create_sandbox(mode=mode, loopback=True) as sibling:
        tcp, udp, interfaces, port = eval(sb.run(SERVE_ITSELF).value)
        assert (tcp, udp, interfaces) == ("tcp", "udp", ["lo"])
        reach = TRY + "attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2))"
        assert sibling.run(reach.format(port=port)).value == "'ECONNREFUSED'"  # its own lo, not sb's
        assert sb.run(reach.format(port=host_port)).value == "'ECONNREFUSED'"  # not the host's
        outside = TRY + "attempt(lambda: socket.create_connection(('1.1.1.1', 80), timeout=2))"
        assert sb.run(outside).value == "'ENETUNREACH'"


def test_without_loopback_tcp_stays_refused(platform_, mode):
    with platform_.create_sandbox(mode=mode) as sb:
        result = sb.run(TRY + "attempt(lambda: socket.socket().bind(('127.0.0.1', 0)))")
        assert result.value == "'EACCES'"  # Landlock: no TCP bind at all


def test_loopback_is_for_isolated_modes(platform_):
    with pytest.raises(ValueError, match="loopback"):
        platform_.create_sandbox(mode=Mode.LOCAL, loopback=True)
