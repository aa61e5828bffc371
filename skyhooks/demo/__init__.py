"""The mixed-stack demo that ``skyhooks demo`` runs.

One server module per framework (``tornado_server``, ``gevent_server``,
``twisted_server``, ``asgi_server``: Starlette under uvicorn), each doing only
its framework's I/O; what they share (the page, the Server-Sent Events format,
argument parsing, starting the worker) is in ``_common``; ``worker`` is the
background job, a process of its own like a Celery worker. This package imports
nothing on purpose: the gevent server must monkey-patch the standard library
before anything else is imported.
"""

#: Where ``skyhooks demo`` hands its servers, and they their workers, the store URL
#: and the secret: the environment, which only the process's user can read, not the
#: command line, which every local user can (``ps``, ``/proc/PID/cmdline``).
STORE_ENV, SECRET_ENV = "SKYHOOKS_STORE", "SKYHOOKS_SECRET"
