"""Every error of the service is JSON: ``{"error": {"code": "snake_case", "message": "..."}}``."""

from __future__ import annotations

import re

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An answer with a 4xx/5xx status and a message a person can act on."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            404: "There is nothing at this address; see /api/v1/openapi.json for the API.",
            405: "This address does not accept that method; see /api/v1/openapi.json.",
        }.get(status, exc.description or exc.name)
        # 405 says which methods, 416 the length (Content-Range: bytes */N).
        headers = dict(exc.get_headers()) if status in (405, 416) else {}
        headers.pop("Content-Type", None)
        return error_response(status, _snake(exc.name), message, headers)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return error_response(
            500, "internal_error", "The server failed to handle this request; try again later."
        )
