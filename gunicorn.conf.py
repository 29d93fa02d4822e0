# gunicorn settings: `gunicorn` run from the repo root reads this file; the settings and
# their reasons live in the package (src/featherbeat/web/gunicorn_conf.py) so that
# `featherbeat serve` uses the same ones when installed without the repo.
from featherbeat.web.gunicorn_conf import *  # noqa: F403
