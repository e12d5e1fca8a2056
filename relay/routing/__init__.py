"""The rules and who is connected: what each client message does, and delivery on this node.

- :mod:`~relay.routing.router`: who may produce and consume what, and what each
  message does (stores alerts first, records status, publishes);
- :mod:`~relay.routing.session`: one client's conversation: authentication first,
  then each parsed message to the router, refusals answered with ``error``;
- :mod:`~relay.routing.hub`: producers and consumers per stream on this node, and
  delivery to their outboxes;
- :mod:`~relay.routing.connection`: what the router and the hub know of one connection;
- :mod:`~relay.routing.owners`: who owns which stream, remembered per node;
- :mod:`~relay.routing.status`: stream status, written in order and then announced.

No sockets here: the connection's outbox is a :class:`~relay.routing.connection.Sink`.
"""
