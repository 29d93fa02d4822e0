# featherbeat service: gunicorn + job consumer in one container (`featherbeat serve`).
#   docker build -t featherbeat .
#   docker run --init -p 8000:8000 -v featherbeat-data:/data featherbeat
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    FEATHERBEAT_DATA_DIR=/data

WORKDIR /app
# The wheels of soundfile and av bundle libsndfile and FFmpeg: no apt packages needed.
COPY pyproject.toml README.md ./
COPY src ./src
# Extras to install: `--build-arg EXTRAS=service,s3` adds boto3 for FEATHERBEAT_BLOB_URL=s3://...
ARG EXTRAS=service
RUN pip install ".[${EXTRAS}]" \
    && useradd --create-home --uid 10001 featherbeat \
    && mkdir -p /data \
    && chown featherbeat /data

USER featherbeat
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"
CMD ["featherbeat", "serve"]
