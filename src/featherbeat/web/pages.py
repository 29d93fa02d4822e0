"""The web page: one HTML shell for the upload view (``/``) and the result view (``/a/<id>``).

Everything else happens in the browser (static ES modules under ``static/``, no build step)
against the public HTTP API, so this blueprint stays tiny and adds next to nothing to the
server's memory. Its static files are served under ``/assets/`` so they never collide with
the application's own ``/static`` route.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, render_template

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# Job ids are opaque to the page, but only URL-safe ones can come from the service; anything
# else is a mistyped link and gets a plain 404 instead of a page that then fails to load.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@bp.get("/")
def upload_view() -> str:
    return render_template("page.html", job_id="")


@bp.get("/a/<job_id>")
def result_view(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        abort(404)
    return render_template("page.html", job_id=job_id)
