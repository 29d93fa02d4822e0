"""The web service: ``create_app(config=None)`` builds the Flask app (tutorial-style factory).

    gunicorn -c gunicorn.conf.py 'featherbeat.web:create_app()'

``config`` is a ``Settings``, a mapping of environment-style names (``{"FEATHERBEAT_DATA_DIR":
...}``, layered over the real environment) or None (the environment alone). Blueprints: the
HTTP API (``featherbeat.web.api``), health and metrics (``featherbeat.web.ops``) and the page
(``featherbeat.web.pages``). The app only enqueues: the
analyses run in the consumer (``featherbeat worker``), so web processes stay small and fast.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from featherbeat.config import Settings

# The page loads its own script, style sheet and icon; media and downloads may be blob: URLs
# (the "play your own copy" file); it talks only to this server.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

if TYPE_CHECKING:
    from flask import Flask

# Flask is imported inside create_app(): gunicorn's master imports this package (its config
# module lives here) and should not carry Flask's ~10 MB; only the workers build the app.


def _settings(config: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(config, Settings):
        return config
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (config or {}).items()})
    return Settings.from_env(env)


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    from flask import Flask, Response, request
    from flask.json.provider import DefaultJSONProvider

    from featherbeat.jobs.services import Services
    from featherbeat.web import api, errors, ops, pages
    from featherbeat.web.clients import UploadRate
    from featherbeat.web.uploads import UploadRequest, start_sweeper

    settings = _settings(config)
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.config.update(
        JSON_SORT_KEYS=False,
        # Seconds between SSE keep-alive comments, and the longest a stream stays open before
        # the client reconnects with Last-Event-ID (frees the thread; proxies like it too).
        SSE_KEEPALIVE=settings.sse_keepalive,
        SSE_MAX_SECONDS=settings.sse_max_seconds,
        # Each open stream holds one gthread thread: keep a quarter of the threads for
        # everything else, so many open pages can never starve status requests or uploads.
        SSE_MAX_STREAMS=max(1, settings.threads * 3 // 4),
    )
    app.extensions["featherbeat.sse_slots"] = threading.BoundedSemaphore(
        app.config["SSE_MAX_STREAMS"]
    )
    app.extensions["featherbeat.upload_slots"] = threading.BoundedSemaphore(settings.max_uploads)
    app.extensions["featherbeat.upload_rate"] = UploadRate(settings.client_uploads_per_minute)
    if isinstance(app.json, DefaultJSONProvider):  # keep our field order in the JSON
        app.json.sort_keys = False
    app.extensions["featherbeat"] = Services.from_settings(settings)
    # Temp uploads of a web process that was killed mid-upload: nobody else would delete them.
    start_sweeper(settings.data_dir / "incoming", settings.incoming_max_age)
    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)

    origins = settings.cors_origins

    @app.before_request
    def _same_origin() -> None:
        """A page on another origin can make a visitor's browser POST a form or a no-cors
        fetch here (no preflight); browsers always say where such a request comes from, so
        state-changing requests from an origin that is neither ours nor allowed are refused.
        Clients that are not browsers send no Origin and are not affected."""
        if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        origin = request.headers.get("Origin")
        if origin is None or "*" in origins or origin in origins:
            return None
        if origin != "null" and urlsplit(origin).netloc == request.host:
            return None  # our own page (the scheme may differ behind a TLS proxy)
        services = app.extensions["featherbeat"]
        services.store.incr("rejected:cross_origin")
        raise errors.ApiError(
            403,
            "cross_origin",
            f"Requests that change data are not accepted from pages on {origin}; "
            "use this server's own page, or ask its operator to allow that origin "
            "(FEATHERBEAT_CORS_ORIGINS).",
        )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # No framing (the result page's Delete button must not be clickjacked), no sniffing
        # of a JSON or audio answer as HTML, no URLs (job ids are keys) leaked as referrers.
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", PAGE_CSP)
        else:
            headers.setdefault(
                "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"
            )
        return response

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and ("*" in origins or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, Last-Event-ID"
            )
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After, Location"
            response.headers["Access-Control-Max-Age"] = "600"
            if "*" not in origins:
                response.headers.add("Vary", "Origin")
        return response

    return app
