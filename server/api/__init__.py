"""The REST API of SPEC §5 under ``/api``: JSON in and out, RFC 9457 problems for errors.

:func:`server.api.routes.setup` installs it on the node's app: the error boundary, the body-size
limit and the per-IP rate limit as middlewares (acting on ``/api`` paths only), then every
operation of the route table. Handlers reach the node through the typed keys of
:mod:`server.keys`; the bodies they share with the STOMP edge are :mod:`server.bodies`', and
errors are translated by :mod:`server.errors`.

| module | holds |
|---|---|
| ``routes`` | the route table and :func:`~server.api.routes.setup` |
| ``operations`` | the route table's :class:`~server.api.operations.Operation` and its install |
| ``problems`` | the error boundary: every error as problem+json |
| ``auth``, ``ratelimit`` | bearer tokens → principals; the REST rate limits |
| ``models``, ``payloads`` | REST-only request/response models; reading and writing JSON |
| ``events``, ``queue``, ``holds``, ``orders``, ``tickets``, ``admin``, ``guest`` | the endpoints |
| ``openapi`` | ``/api/openapi.json`` and ``/api/docs``, built from the table |
"""
