"""Instance programs: one small server per framework, driven over HTTP by the behaviour suite.

Each ``tests/adapters/instances/<framework>.py`` is run as
``python -m tests.adapters.instances.<framework> --store URL --secret S [--ttl T] [--port P]``
and must:

- serve, on ONE port on 127.0.0.1 (``--port``, 0 = a free one), the adapter's webhook
  handler at ``/skyhooks`` and the control endpoints below under ``/control/``;
- build its ``Registry(url=f"http://127.0.0.1:{port}/skyhooks", store=..., secret=...,
  ttl=...)`` and ``Publisher(store=..., secret=...)`` from the adapter under test, call
  ``registry.start()`` once listening, then print ``LISTENING <port>`` on stdout (flush);
- on SIGTERM (and SIGINT): finish ``registry.stop()`` (bounded), then exit with status 0;
- keep the framework-free bookkeeping in :class:`tests.adapters.instances.common.Recorder`
  and only translate HTTP to it, so the three programs stay thin and alike.

Control endpoints (JSON bodies and answers, status 200 unless the request is malformed):

``POST /control/register {"keys": {...}, "name": "cb1", "kind": "sync", "wait": true}``
    Registers ``recorder.callback(name, kind)`` for the keys. kind ``sync``: a plain function;
    ``async``: a coroutine function (Tornado, Twisted) or a function that returns after a
    cooperative yield (gevent) that records after yielding to the loop once; ``raise``: records,
    then raises RuntimeError. With ``wait`` (default true) the answer is sent only when what
    ``register`` returned has completed. Answer ``{"ok": true}``.
``POST /control/unregister {"keys": {...}, "name": "cb1", "wait": true}``
    The same, for ``unregister``.
``GET /control/received``
    ``recorder.received``: ``{"cb1": [{"id": ..., "keys": {...}, "data": ...}, ...]}``.
``GET /control/topics``
    ``{"topics": ["account_id=42", ...]}`` (sorted ``str(topic)`` of ``registry.topics``).
``GET /control/lag``
    ``recorder.lag()``: the event loop's (or hub's) worst lateness in ms since the last reset,
    measured by a 10 ms ticker the instance runs with ``recorder.tick()``.
``POST /control/reset``
    Forget received messages and lag samples.
``POST /control/notify {"keys": {...}, "data": ..., "retry": {...RetryPolicy fields}}``
    Publishes with the adapter's async ``Publisher`` (one built per distinct ``retry``, or the
    default one) and answers ``report.as_dict()``, or ``{"error": "StoreError: ..."}``.
``POST /control/stop``
    ``registry.stop()``, answering ``{"removed": <its result>}`` once it completes.
"""
