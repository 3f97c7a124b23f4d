"""Domain errors and the one handler that renders every error as
`{"error": {"code", "message"}}` (validation errors add the field paths)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)


class SouqError(Exception):
    """An error a client can act on: a code, a message and an HTTP status."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        # Seconds until trying again can succeed, sent as Retry-After: only when known.
        self.retry_after = retry_after


class InvalidInput(SouqError):
    status_code = 422
    code = "invalid_input"


class NotAuthenticated(SouqError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(SouqError):
    status_code = 403
    code = "forbidden"


class NotFound(SouqError):
    status_code = 404
    code = "not_found"


class Conflict(SouqError):
    status_code = 409
    code = "conflict"


class TooManyRequests(SouqError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int) -> None:
        super().__init__(message, code=code, retry_after=max(1, retry_after))


def wait_text(seconds: int) -> str:
    """'42 seconds', '15 minutes': how long to wait, rounded up, for a message."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minutes"


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        details.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
    return details


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path. Starlette's own 405 names only the first
    route that matched the path, though several routes may share it; asking each route
    whether it would fully match the request with another method finds them all."""
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


NOT_PAGES = ("/api/", "/_sandbox", "/docs", "/redoc", "/openapi.json", "/healthz")


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the JSON API): it gets an error page, not JSON."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        NOT_PAGES
    )


def _answer(request: Request, response: JSONResponse) -> Response:
    """The JSON error, or the same error as a page for a browser."""
    if not wants_page(request):
        return response
    from souq.web.pages import error_page  # the pages import this module

    error = json.loads(bytes(response.body))["error"]
    failure = SouqError(error["message"], code=error["code"], status_code=response.status_code)
    page = error_page(request, failure)
    for name in ("Retry-After", "Allow"):
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


def _souq_json(exc: SouqError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=headers,
    )


async def _souq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SouqError)
    return _answer(request, _souq_json(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
    return _answer(
        request,
        JSONResponse(
            error_body("invalid_input", summary or "invalid request", details), status_code=422
        ),
    )


HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "not_authenticated",
    403: "forbidden",
    413: "payload_too_large",
}


def _http_json(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status, message, headers = exc.status_code, str(exc.detail), exc.headers
    if status == 400:
        # The framework's only 400: a body it could not parse. Bad input is a 422 here.
        status, message = 422, "the request body could not be parsed"
        return JSONResponse(error_body("invalid_input", message), status_code=status)
    if status == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return JSONResponse(
        error_body(HTTP_CODES.get(status, "http_error"), message),
        status_code=status,
        headers=headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return _answer(request, _http_json(request, exc))


async def _out_of_range(_request: Request, exc: Exception) -> Response:
    # A number too large for the database (an id of 30 digits): the client's mistake.
    log.info("value out of range: %s", type(exc).__name__)
    return JSONResponse(
        error_body("invalid_input", "a number in the request is out of range"), status_code=422
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _answer(
        request,
        JSONResponse(
            error_body("internal_error", "something went wrong on our side"), status_code=500
        ),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error, ours or the framework's, answered in the one error shape (or as a page)."""
    app.add_exception_handler(SouqError, _souq_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected)
