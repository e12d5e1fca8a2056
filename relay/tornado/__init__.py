"""The relay on Tornado: the only package that touches sockets.

The WebSocket upgrade is completed by a Tornado handler; the connection then
runs on an asyncio transport with the ``websockets`` library's sans-I/O protocol
(:mod:`~relay.tornado.connection`), writes through its bounded
:mod:`~relay.tornado.outbox`, and is pinged by :mod:`~relay.tornado.heartbeat`.
:mod:`~relay.tornado.server` is ``relay serve``'s HTTP server.  Nothing outside
this package imports ``tornado.websocket`` or ``tornado.iostream``.
"""
