"""The network side of one party process on MPyC 0.10: listen only where the plan says, talk only to the plan's
certificates, and end at once when a peer goes away. Imported only by the party process (it imports MPyC).

What MPyC 0.10 does by itself (mpyc/runtime.py, ``Runtime.start``; mpyc/asyncoro.py, ``MessageExchanger``):
- Parties 1 and 2 listen with ``loop.create_server(factory, port=port, ssl=...)``: no host, so asyncio binds every
  interface (0.0.0.0 and ::). Party 0 never listens; every party connects to each party with a higher index,
  retrying every 0.1 s for ever. The listening socket is closed once all three are connected.
- With ``--ssl`` both sides require a certificate issued by ``.config/mpyc_ca.crt``, and a connecting party checks
  the server's name ``MPyC party <j>``. The server does not check that the client's certificate belongs to the party
  index the client then claims in its first two bytes, and the client sends its PRSS keys as soon as the handshake
  is done.
- A lost connection is raised inside an asyncio protocol callback, where the event loop only logs it: the program
  never sees it and the other parties wait for ever. MPyC has no time limits of its own.

What ``install`` adds before ``mpc.start()``:
- ``bind``: the runtime's event loop gets a ``create_server`` that passes the plan's host, so a party listens only
  on that address (a host name is resolved and bound on each of its addresses, as asyncio does).
- ``pins``: one DER certificate per party from the signed plan. A connecting party checks, before it sends anything
  (its index and PRSS keys), that the server presented exactly the plan's certificate for that index; a listening
  party checks that the client presented the plan's certificate of a lower party and that the index the client
  claims is that party's. Anything else aborts the connection and ends the run with a message.
- Every connection lost before ``closing`` is set (the party sets it just before MPyC's own shutdown) ends the run
  at once with a message naming the peer; the last error of each failed connection attempt is kept for the
  message when a peer never connects (``waiting_for``).
"""

from __future__ import annotations

import asyncio


class PeerProblem(Exception):
    """A peer failed, went away or presented the wrong certificate; the message is for people."""


class Net:
    def __init__(self, index: int, names: list[str], addresses: list[tuple[str, int]], *,
                 pins: list[bytes] | None = None, bind: str | None = None) -> None:
        self.index = index
        self.names = names
        self.addresses = addresses
        self.pins = pins
        self.bind = bind
        self.closing = False
        self.connected = False  # set once all three are connected
        self.mpc = None
        self.failure: asyncio.Future | None = None
        self.last_error: dict[int, str] = {}

    def who(self, pid: int | None) -> str:
        if pid is None or not 0 <= pid < len(self.names):
            return "a party"
        host, port = self.addresses[pid]
        return f"party {pid} ({self.names[pid]} at {host}:{port})"

    def fail(self, message: str) -> None:
        if self.failure is not None and not self.failure.done():
            self.failure.set_exception(PeerProblem(message))

    def not_connected(self) -> str:
        """Who is not connected (yet), in words; empty when everyone is."""
        missing = [p.pid for p in self.mpc.parties if p.pid != self.mpc.pid and p.protocol is None]
        parts = []
        for pid in missing:
            if pid > self.index:
                why = self.last_error.get(pid)
                parts.append(f"{self.who(pid)} did not answer" + (f" (last attempt: {why})" if why else ""))
            else:
                host, port = self.addresses[self.index]
                parts.append(f"{self.who(pid)} did not connect to this party at {host}:{port}")
        return "; ".join(parts)

    def waiting_for(self, seconds: float) -> str:
        """Who has not connected after `seconds`, for the timeout message."""
        missing = self.not_connected()
        if not missing:
            return f"the parties did not finish connecting within {seconds:.0f} s; nothing was computed"
        return missing + f" within {seconds:.0f} s; nothing was computed"


def install(mpc, net: Net) -> None:
    """Patch the started-but-not-connected MPyC runtime `mpc` as the module docstring says."""
    from mpyc import asyncoro

    loop = mpc._loop
    net.mpc = mpc
    net.failure = loop.create_future()
    net.failure.add_done_callback(lambda f: f.exception())  # never "exception was never retrieved"
    create_server, create_connection = loop.create_server, loop.create_connection

    async def bound_server(factory, host=None, port=None, **kwargs):
        return await create_server(factory, host=net.bind if host is None else host, port=port, **kwargs)

    async def noted_connection(factory, host=None, port=None, **kwargs):
        try:
            return await create_connection(factory, host, port, **kwargs)
        except Exception as exc:  # MPyC retries; keep the reason for the message
            for pid, (h, p) in enumerate(net.addresses):
                if (h, p) == (host, port):
                    net.last_error[pid] = f"{type(exc).__name__}: {exc}"[:200]
            raise

    if net.bind is not None:
        loop.create_server = bound_server
    loop.create_connection = noted_connection
    base = asyncoro.MessageExchanger

    class CheckedExchanger(base):
        """MPyC's message exchanger with certificate pinning and loud connection loss."""

        def connection_made(self, transport):
            self.aborted = False
            self.cert_index = None
            if net.pins is not None:
                ssl_object = transport.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
                if self.peer_pid is not None:  # this party connected to a higher one
                    if der != net.pins[self.peer_pid]:
                        return self._refuse(transport, f"{net.who(self.peer_pid)} presented a TLS certificate "
                                                       "other than the one the plan names for it")
                else:
                    lower = [i for i in range(net.index) if net.pins[i] == der]
                    if not lower:
                        return self._refuse(transport, "a connection presented a TLS certificate that is not the "
                                                       "plan's certificate of a party that connects to this one")
                    self.cert_index = lower[0]
            super().connection_made(transport)

        def _refuse(self, transport, message: str) -> None:
            self.aborted = True
            transport.abort()
            net.fail(message + "; the run was stopped")

        def data_received(self, data):
            if self.aborted:
                return
            if self.cert_index is not None and self.peer_pid is None and len(self.bytes) + len(data) >= 2:
                claimed = int.from_bytes((bytes(self.bytes) + bytes(data))[:2], "little")
                if claimed != self.cert_index:
                    return self._refuse(self.transport, f"{net.who(self.cert_index)} claimed to be party "
                                                        f"{claimed}")
            super().data_received(data)

        def connection_lost(self, exc):
            if self.aborted:
                return
            if not net.closing and not net.connected:
                waiting = net.not_connected()
                net.fail(f"{net.who(self.peer_pid)} went away before all three parties were connected"
                         + (f" ({waiting})" if waiting else "") + "; nothing was computed")
            elif not net.closing:
                detail = f": {exc}" if exc else ""
                net.fail(f"lost the connection to {net.who(self.peer_pid)} during the computation{detail}; "
                         "it stopped or the network failed, nothing was released")
            try:
                super().connection_lost(exc)
            except Exception:  # noqa: BLE001 - already reported through net.failure
                pass

    asyncoro.MessageExchanger = CheckedExchanger


async def guarded(net: Net, work):
    """Run the coroutine `work` until it ends or a peer problem is reported, whichever comes first."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task, net.failure}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    raise net.failure.exception()
