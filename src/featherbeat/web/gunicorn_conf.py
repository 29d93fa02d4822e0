"""gunicorn settings of the service (the repo's gunicorn.conf.py imports this module, and
``featherbeat serve`` passes it as ``-c python:featherbeat.web.gunicorn_conf``).

- gthread: a Server-Sent-Events stream holds one thread, never the whole worker, so status
  requests still answer while many pages follow their jobs. Our subclass of it
  (``featherbeat.web.guard``) reads request heads in the event loop with a deadline, puts a
  minimum rate on bodies and caps connections per client, so slow clients cannot take the
  threads (the process faces the internet directly in the documented deployments).
- one worker by default: the app only reads/writes the job store and streams files, and
  every extra worker costs ~35 MB of the 200 MB budget. Scale with threads first.
- max_requests + jitter recycle the worker now and then (a slow leak never grows unbounded).
- timeouts fit Render: it sends SIGTERM and waits 30 s, so graceful_timeout is 25 s; its
  load balancer keeps idle connections ~60 s, so keepalive outlasts it (no reset races).
"""

from __future__ import annotations

import os

from featherbeat.config import Settings

_settings = Settings.from_env()  # stdlib only: the master stays small

bind = f"{_settings.host}:{_settings.port}"
wsgi_app = "featherbeat.web:create_app()"
worker_class = "featherbeat.web.guard.GuardedThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = _settings.threads
max_requests = 2000
max_requests_jitter = 200
timeout = 60  # gthread: how long the worker's main loop may be silent, not a request limit
graceful_timeout = 25
keepalive = 65
preload_app = False  # the master stays a small process without Flask in it
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "featherbeat-web"
# gunicorn >= 25 opens a control socket at one fixed path per user; two services on one box
# (tests, blue/green deploys) would fight over it, and we do not use it.
control_socket_disable = True


def worker_int(worker: object) -> None:
    """SIGINT/SIGQUIT mean "quick shutdown" to gunicorn, but a gthread worker that gets
    Ctrl-C straight from the terminal and SIGQUIT from its master at the same moment can
    hang in interpreter shutdown (joining its pool threads) until the master SIGKILLs it
    after ``graceful_timeout`` (25 s). Leave at once: graceful stops use SIGTERM."""
    os._exit(0)
