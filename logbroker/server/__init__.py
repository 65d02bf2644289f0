"""The Kafka-protocol network front end: asyncio only here (DESIGN.md decision 7).

``Server(broker).start(host, port)`` accepts Kafka clients; ``logbroker serve`` runs one.  The wire
codec is ``logbroker.protocol`` (sans-I/O); each API family has a handler module in ``handlers/``
that turns a decoded request body into a response body by calling the embedded ``Broker``.

Threading model, in one paragraph: one event loop owns every socket.  Anything that may block -- an
append, an fsync wait, a read from a segment, a group-coordinator call (it appends to and fsyncs
``__consumer_offsets``) -- runs in a thread pool; the loop never waits on a disk.  Things that wait
for *other* clients (long-poll Fetch, JoinGroup / SyncGroup waiting for the rest of a group) hold no
thread: they wait on asyncio futures that broker callbacks resolve through
``loop.call_soon_threadsafe``.
"""

from .app import Server, bind_socket, format_address, parse_listen

__all__ = ["Server", "bind_socket", "format_address", "parse_listen"]
