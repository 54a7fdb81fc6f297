# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""An endpoint's life: certificates renewed over years, and a cancelled exit that tells peers.

Issue 10, rows 12 and 13.  Certificate expiry runs under `trio.testing.MockClock`
with a fake wall clock (`Config.wall_clock`); the real clock is never read.
Cancellation runs on a `MemoryNetwork`, on real loopback UDP, and through the
``qp2p-trio ping`` command interrupted with SIGINT.
"""

from __future__ import annotations

import datetime
import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from test_cli import Listener, Process

import qp2p_trio
from qp2p_trio import Config, PeerIdentityError
from qp2p_trio._certs import (
    RENEWAL_MARGIN,
    make_certificate,
    renewal_window,
    verify_certificate_chain,
)
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

if TYPE_CHECKING:
    from qp2p_trio import Connection, Endpoint

DAY = 86400.0
#: The fake wall clock's epoch, far from today: a certificate check that read
#: the real clock instead would reject every certificate of these tests.
START = 1_000_000_000.0  # 2001-09-09


class WallClock:
    """A fake wall clock that follows Trio's (mock) clock; it can be set back or forth."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return START + self.offset + trio.current_time()


def date_of(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, tz=datetime.UTC).date().isoformat()


def presented_serial(conn: Connection) -> int:
    """Serial number of the certificate the peer of ``conn`` presented."""
    certificates = conn.core.peer_certificates()
    assert len(certificates) == 1
    return int(certificates[0].serial_number)


# --------------------------------------------------------------- row 12


def test_renewal_window_ends_a_margin_before_expiry() -> None:
    cert, _ = make_certificate(qp2p_trio.Identity.generate(), now=START)
    start, renew_at = renewal_window(cert)
    assert start == cert.not_valid_before_utc.timestamp() <= START
    assert renew_at == cert.not_valid_after_utc.timestamp() - RENEWAL_MARGIN
    assert START + 300 * DAY < renew_at < START + 365 * DAY


def test_config_wall_clock_must_be_callable() -> None:
    assert Config().wall_clock is None
    assert Config(wall_clock=time.time).wall_clock is time.time
    with pytest.raises(TypeError, match="wall_clock"):
        Config(wall_clock=12.0)  # type: ignore[arg-type]


def test_verification_rejects_expired_certificate_at_the_given_time() -> None:
    identity = qp2p_trio.Identity.generate()
    cert, _ = make_certificate(identity, now=START)
    assert verify_certificate_chain([cert], now=START + 364 * DAY) == identity.node_id
    with pytest.raises(PeerIdentityError, match=f"not valid at {date_of(START + 366 * DAY)}"):
        verify_certificate_chain([cert], now=START + 366 * DAY)


def test_connection_reads_no_clock_of_its_own() -> None:
    """Peer certificates are checked at the endpoint's wall clock, never at ``time.time()``."""
    source = (Path(qp2p_trio.__file__).parent / "_connection.py").read_text(encoding="utf-8")
    assert "time.time" not in source
    assert "import time" not in source


async def test_endpoint_serves_fresh_peers_for_400_days(autojump_clock: Any) -> None:
    """Row 12: the certificate is renewed before it expires; old connections keep theirs."""
    # No keep-alive and a long idle timeout: the clock jumps 200 days at once,
    # and the connection made on day 0 must survive to day 400.
    config = Config(wall_clock=WallClock(), keep_alive_interval=None, idle_timeout=500 * DAY)
    net = MemoryNetwork(seed=12)
    with net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server = await factory()
            first = await factory()
            old = await first.connect(server.local_address, node_id=server.node_id)
            serials = []
            for day in (0, 200, 400):
                await trio.sleep_until(day * DAY)
                with trio.fail_after(5):
                    # A fresh peer dials the server: the server's certificate
                    # as a TLS server; then the server dials another one.
                    peer = await factory()
                    conn = await peer.connect(server.local_address, node_id=server.node_id)
                    await conn.send(f"day {day}".encode())
                    assert (await server.receive()).payload == f"day {day}".encode()
                    other = await factory()
                    out = await server.connect(other.local_address, node_id=other.node_id)
                    await out.send(b"from the server")
                    assert (await other.receive()).payload == b"from the server"
                serials.append(presented_serial(conn))
                assert presented_serial(await other.accept()) == serials[-1]
            # Minted on day 0, renewed by day 400 (30 days before expiry).
            assert serials[0] == serials[1] != serials[2]
            # The day-0 connection still works, with the certificate it started with.
            with trio.fail_after(5):
                await old.send(b"still here")
                assert (await server.receive()).payload == b"still here"
            assert presented_serial(old) == serials[0]


async def test_expired_peer_certificate_rejected_at_injected_time(autojump_clock: Any) -> None:
    """A peer whose wall clock is 400 days ahead sees our year-long certificate expired."""
    net = MemoryNetwork(seed=12)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(config=Config(wall_clock=WallClock()))
            ahead = await factory(config=Config(wall_clock=WallClock(400 * DAY), retry=None))
            with trio.fail_after(5):
                with pytest.raises(PeerIdentityError) as info:
                    await ahead.connect(server.local_address, node_id=server.node_id)
            assert f"not valid at {date_of(START + 400 * DAY)}" in str(info.value)


async def test_certificate_renewed_when_the_wall_clock_goes_back(autojump_clock: Any) -> None:
    """A clock set back before our certificate's start: a fresh one, or peers reject it."""
    clock = WallClock()
    net = MemoryNetwork(seed=12)
    with net.activate():
        async with open_endpoint_factory(net, config=Config(wall_clock=clock)) as factory:
            server = await factory()
            first = await (await factory()).connect(server.local_address, node_id=server.node_id)
            clock.offset = -10 * DAY
            with trio.fail_after(5):
                peer = await factory()
                conn = await peer.connect(server.local_address, node_id=server.node_id)
            assert presented_serial(conn) != presented_serial(first)


# --------------------------------------------------------------- row 13


async def hold_endpoint(
    address: tuple[str, int],
    dial: list[Endpoint],
    *,
    finally_aclose: bool = False,
    task_status: trio.TaskStatus[Endpoint] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open an endpoint, dial ``dial``, then hold it until cancelled (as an application does)."""
    async with qp2p_trio.open_endpoint(address) as ep:
        try:
            for peer in dial:
                await ep.connect(peer.local_address, node_id=peer.node_id)
            task_status.started(ep)
            await trio.sleep_forever()
        finally:
            if finally_aclose:
                await ep.aclose()


async def assert_closed_by_peer(conns: list[Connection], within: float) -> None:
    """Every connection ends with the peer's normal close (code 0), within ``within`` seconds."""
    with trio.fail_after(within):
        for conn in conns:
            closed = await conn.wait_closed()
            assert closed.by_peer, closed
            assert closed.error_code == 0, closed
            assert not closed.idle_timeout, closed


@pytest.mark.parametrize("finally_aclose", [False, True])
async def test_cancelled_endpoint_closes_every_connection(
    autojump_clock: Any, finally_aclose: bool
) -> None:
    """Row 13: leaving open_endpoint by cancellation still sends CONNECTION_CLOSE.

    Also with ``await ep.aclose()`` in the cancelled body's ``finally``.
    """
    net = MemoryNetwork(seed=13)
    net.add_host("127.0.0.100")
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            dialled, dialler = await factory(), await factory()
            async with trio.open_nursery() as nursery:
                ep = await nursery.start(
                    lambda task_status: hold_endpoint(
                        ("127.0.0.100", 0),
                        [dialled],
                        finally_aclose=finally_aclose,
                        task_status=task_status,
                    )
                )
                await dialler.connect(ep.local_address, node_id=ep.node_id)
                conns = [await dialled.accept(), *dialler.connections()]
                cancelled_at = trio.current_time()
                nursery.cancel_scope.cancel()
            exit_time = trio.current_time() - cancelled_at
            # Idle timeout is 30 s: "promptly" is well under a second (virtual).
            await assert_closed_by_peer(conns, within=0.1)
            assert exit_time < 0.1


async def test_aclose_in_cancelled_scope_closes_connections(autojump_clock: Any) -> None:
    """`Endpoint.aclose` under a cancelled scope closes anyway, with CONNECTION_CLOSE."""
    net = MemoryNetwork(seed=13)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            pair = await factory.pair()
            with trio.CancelScope() as scope:
                scope.cancel()
                await pair.a.aclose()
            assert pair.conn_ab.is_closed
            await assert_closed_by_peer([pair.conn_ba], within=0.1)
            with pytest.raises(trio.ClosedResourceError):
                await pair.a.connect(pair.b.local_address)


async def test_cancelled_exit_is_bounded_by_close_grace(autojump_clock: Any) -> None:
    """A peer that stops answering cannot hold up a cancelled endpoint past close_grace."""
    net = MemoryNetwork(seed=13)
    net.add_host("127.0.0.100")
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            peer = await factory()
            async with trio.open_nursery() as nursery:
                ep = await nursery.start(hold_endpoint, ("127.0.0.100", 0), [peer])
                with trio.fail_after(5):
                    conn = await peer.accept()
                # The peer gets nothing more from us, so our receipt for its
                # message is never acknowledged: the graceful part waits.
                net.blackhole(peer.local_address)
                nursery.start_soon(conn.send, b"unanswered")
                with trio.fail_after(5):
                    assert (await ep.receive()).payload == b"unanswered"
                cancelled_at = trio.current_time()
                nursery.cancel_scope.cancel()
            assert trio.current_time() - cancelled_at <= ep.config.close_grace
            assert ep.statistics().connections == 0


async def test_cancelled_endpoint_closes_connection_on_loopback() -> None:
    """Row 13 on real UDP sockets on 127.0.0.1."""
    async with open_endpoint_factory() as factory:
        peer = await factory()
        async with trio.open_nursery() as nursery:
            await nursery.start(hold_endpoint, ("127.0.0.1", 0), [peer])
            with trio.fail_after(10):
                conn = await peer.accept()
            cancelled_at = trio.current_time()
            nursery.cancel_scope.cancel()
        # Seconds of real time, for a loaded machine: still far from the
        # 30 s idle timeout peers saw before.
        await assert_closed_by_peer([conn], within=5)
        print(f"loopback: peer saw the close {trio.current_time() - cancelled_at:.4f} s after")


def test_ping_interrupted_closes_its_connection(tmp_path: Path) -> None:
    """Row 13 end to end: Ctrl-C on ``qp2p-trio ping -c 0``; the listener sees the close at once."""
    listener = Listener(tmp_path, "--json", "127.0.0.1:0")
    ping: Process | None = None
    try:
        ping = Process(tmp_path, "ping", "-c", "0", "-i", "0.02", listener.peer)
        listener.wait_event("connected")
        ping.wait_for(lambda text: "seq=2 " in text)
        interrupted_at = time.monotonic()
        ping.proc.send_signal(signal.SIGINT)
        # Bounded well below the 30 s idle timeout the listener saw before.
        event = listener.wait_event("disconnected", timeout=10)
        elapsed = time.monotonic() - interrupted_at
        assert event["reason"].startswith("closed by the peer"), event
        assert event["code"] == 0, event
        assert ping.finish() == 130, ping.stderr()  # interrupted: the exit code table says 130
        print(f"cli: the listener saw the close {elapsed:.3f} s after SIGINT ({json.dumps(event)})")
    finally:
        if ping is not None:
            ping.close()
        listener.close()
