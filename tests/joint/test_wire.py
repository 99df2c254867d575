"""joint/wire.py: certificate pinning, the claimed party index, lost peers and the waiting message, on MPyC's
message exchanger with stand-in transports (no sockets), and pinning in a real TLS run of three local parties."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import pytest

from aggregator.joint import runner, wire
from aggregator.joint.errors import PartyFailed
from aggregator.joint.tls import certificate_der

from .util import make_job, random_vectors, small_layout

PINS = [b"cert-0", b"cert-1", b"cert-2"]


class Transport:
    def __init__(self, peer_cert: bytes | None) -> None:
        self.peer_cert, self.aborted, self.written = peer_cert, False, []

    def get_extra_info(self, name):
        assert name == "ssl_object"
        return SimpleNamespace(getpeercert=lambda binary_form: self.peer_cert)

    def abort(self):
        self.aborted = True

    def writelines(self, parts):
        self.written.extend(parts)

    def write(self, data):
        self.written.append(data)


@pytest.fixture
def installed():
    """A stand-in MPyC runtime for party 1 with wire installed; MPyC's own class is put back afterwards."""
    from mpyc import asyncoro

    original = asyncoro.MessageExchanger
    loop = asyncio.new_event_loop()
    connected = []
    rt = SimpleNamespace(_loop=loop, pid=1, options=SimpleNamespace(no_prss=True),
                         parties=[SimpleNamespace(pid=i, protocol=None) for i in range(3)],
                         set_protocol=lambda pid, proto: connected.append(pid), _prss_keys_to_peer=lambda pid: [])
    net = wire.Net(1, ["zero", "one", "two"], [("127.0.0.1", 7000 + i) for i in range(3)], pins=PINS,
                   bind="127.0.0.1")
    wire.install(rt, net)
    try:
        yield rt, net, asyncoro.MessageExchanger, connected
    finally:
        asyncoro.MessageExchanger = original
        loop.close()


def _problem(net) -> str:
    assert net.failure.done()
    return str(net.failure.exception())


def test_a_server_that_presents_another_certificate_gets_nothing(installed):
    rt, net, exchanger, connected = installed
    good = Transport(PINS[2])
    exchanger(rt, 2).connection_made(good)  # party 1 connects to party 2: the plan's certificate
    assert not good.aborted and connected == [2] and good.written == [b"\x01\x00"]  # its index goes out
    bad = Transport(PINS[0])
    exchanger(rt, 2).connection_made(bad)
    assert bad.aborted and bad.written == []  # nothing sent: no index, no PRSS keys
    assert "party 2 (two at 127.0.0.1:7002) presented a TLS certificate other than" in _problem(net)


def test_a_client_must_hold_the_certificate_of_the_index_it_claims(installed):
    rt, net, exchanger, connected = installed
    honest = exchanger(rt)
    honest.connection_made(Transport(PINS[0]))
    honest.data_received(b"\x00\x00")  # party 0 says it is party 0
    assert connected == [0] and not net.failure.done()
    liar = exchanger(rt)
    transport = Transport(PINS[0])
    liar.connection_made(transport)
    liar.data_received(b"\x02")
    liar.data_received(b"\x00")  # party 0's certificate, claims to be party 2
    assert transport.aborted and "party 0 (zero at 127.0.0.1:7000) claimed to be party 2" in _problem(net)


def test_a_client_certificate_of_no_lower_party_is_refused(installed):
    rt, net, exchanger, _ = installed
    transport = Transport(PINS[2])  # party 2 never connects to party 1 (MPyC: lower connects to higher)
    exchanger(rt).connection_made(transport)
    assert transport.aborted and "not the plan's certificate of a party that connects to this one" in _problem(net)


def test_a_lost_peer_is_reported_before_and_after_everyone_connected(installed):
    rt, net, exchanger, _ = installed
    peer = exchanger(rt, 2)
    peer.connection_made(Transport(PINS[2]))
    rt.parties[2].protocol = peer
    peer.connection_lost(None)
    message = _problem(net)
    assert "party 2 (two at 127.0.0.1:7002) went away before all three parties were connected" in message
    assert "party 0 (zero at 127.0.0.1:7000) did not connect to this party at 127.0.0.1:7001" in message

    net.failure = rt._loop.create_future()
    net.connected = True
    peer.connection_lost(ConnectionResetError("reset"))
    assert "lost the connection to party 2 (two at 127.0.0.1:7002) during the computation: reset" in _problem(net)

    net.failure = rt._loop.create_future()
    net.closing = True  # MPyC's own shutdown closes connections: not a problem
    peer.connection_lost(None)
    assert not net.failure.done()


def test_waiting_names_the_last_connection_error():
    net = wire.Net(0, ["zero", "one", "two"], [("127.0.0.1", 7000 + i) for i in range(3)])
    net.mpc = SimpleNamespace(pid=0, parties=[SimpleNamespace(pid=0, protocol=object()),
                                              SimpleNamespace(pid=1, protocol=object()),
                                              SimpleNamespace(pid=2, protocol=None)])
    net.last_error[2] = "ConnectionRefusedError: refused"
    assert net.waiting_for(5) == ("party 2 (two at 127.0.0.1:7002) did not answer (last attempt: "
                                  "ConnectionRefusedError: refused) within 5 s; nothing was computed")


def test_a_peer_certificate_from_the_same_ca_that_the_plan_does_not_name_stops_the_run(tmp_path):
    """Real TLS between three local parties; the pins say parties 1 and 2 hold each other's certificate."""
    lay = small_layout()
    tls = runner.make_tls(tmp_path / "tls")
    certs = [(tls / ".config" / f"party_{i}.crt").read_text() for i in range(3)]
    pins = [base64.b64encode(certificate_der(certs[i])).decode("ascii") for i in (0, 2, 1)]
    job = make_job(tmp_path, lay, random_vectors(lay, ["org0", "org1"], 0.2, 1), tls=str(tls),
                   extra={"pins": pins})
    with pytest.raises(PartyFailed, match="presented a TLS certificate (other than|that is not)") as caught:
        runner.run_local(job, timeout=30)
    assert "Traceback" not in str(caught.value)
