"""Validate Stripe API requests and responses against Stripe's OpenAPI description.

The description is Stripe's own (API 2023-08-16, ``openapi/spec3.json.gz``). The sandbox calls
:func:`validate_request` for every ``/v1/...`` request so that it rejects what Stripe rejects,
and the tests call :func:`validate_response` so that its answers keep Stripe's shapes.

Requests arrive form-encoded, so every leaf is a string; :func:`validate_request` checks the
decoded tree against the operation's parameter schema and returns a typed copy. Errors name the
parameter the way Stripe does (``line_items[0][price_data][currency]``) and carry a ``code``:

============================== ======================================================
code                           when
============================== ======================================================
``parameter_unknown``          a parameter the operation does not declare (Stripe's code)
``parameter_missing``          a required parameter is absent (Stripe's code)
``parameter_invalid_empty``    ``""`` for a parameter that cannot be unset (Stripe's code)
``parameter_invalid_integer``  not an integer, or outside 64 bits (Stripe's code)
``parameter_invalid_boolean``  not ``true``/``false``
``parameter_invalid_number``   not a number (``type: number``)
``parameter_invalid_decimal``  not a decimal string (``format: decimal``)
``parameter_invalid_string``   a hash or array where a string belongs, a value outside the
                               enum, or a string longer than ``maxLength``
``parameter_invalid_object``   a string where a hash belongs (Stripe says "Invalid hash")
``parameter_invalid_array``    a string where an array belongs
``unrecognized_url``           no such operation; ``SpecError.status`` is 404 for this one
============================== ======================================================

Stripe documents only the first four codes with fixed meanings; for the others it sends a
message and sometimes no code, so the names here are ours and the messages follow Stripe's.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

__all__ = ["SpecError", "find_operation", "validate_request", "validate_response"]

_OPENAPI_DIR = Path(__file__).parent / "openapi"
_SPEC_FILE = _OPENAPI_DIR / "spec3.json.gz"
_FORM = "application/x-www-form-urlencoded"
_METHODS = ("get", "post", "delete")
_INT_RE = re.compile(r"-?[0-9]+")
_NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DECIMAL_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INT64_LIMIT = 2**63


class SpecError(Exception):
    """A request Stripe would reject; rendered as a 400 ``invalid_request_error``.

    ``status`` is 400 except for ``unrecognized_url`` (404).
    """

    def __init__(self, message: str, *, param: str | None, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


@functools.cache
def _spec() -> dict[str, Any]:
    with gzip.open(_SPEC_FILE, "rb") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec


# A route: the template's segments (None for a "{param}" segment), the template, the operation.
_Route = tuple[tuple[str | None, ...], str, dict[str, Any]]


@functools.cache
def _routes() -> dict[tuple[str, int], list[_Route]]:
    index: dict[tuple[str, int], list[_Route]] = {}
    for template, item in _spec()["paths"].items():
        segments = tuple(
            None if seg.startswith("{") and seg.endswith("}") else seg
            for seg in template.strip("/").split("/")
        )
        for method in _METHODS:
            if method in item:
                index.setdefault((method, len(segments)), []).append(
                    (segments, template, item[method])
                )
    for routes in index.values():
        # Literal segments win over templated ones, earliest segment first:
        # "/v1/charges/search" before "/v1/charges/{charge}".
        routes.sort(key=lambda route: tuple(seg is None for seg in route[0]))
    return index


def find_operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The spec's path template and operation for a concrete request path, or None."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if any(part == "" for part in parts):
        return None
    for segments, template, operation in _routes().get((method.lower(), len(parts)), ()):
        if all(seg is None or seg == part for seg, part in zip(segments, parts, strict=True)):
            return template, operation
    return None


def _resolve_operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    found = find_operation(method, path)
    if found is None:
        raise SpecError(
            f"Unrecognized request URL ({method.upper()}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            param=None,
            code="unrecognized_url",
            status=404,
        )
    return found


@functools.cache
def _params_schema(method: str, template: str) -> dict[str, Any]:
    """One object schema for everything a request may send: query parameters plus the body.

    Stripe's GET operations declare query ``parameters`` (``style: deepObject`` for hashes)
    and an empty body; POST operations declare a form body; a few DELETE operations declare
    body fields that the SDK sends in the query string. Merging both covers every case.
    """
    operation = _spec()["paths"][template][method]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        properties[parameter["name"]] = parameter.get("schema", {})
        if parameter.get("required"):
            required.append(parameter["name"])
    content = operation.get("requestBody", {}).get("content", {})
    body: dict[str, Any] = content.get(_FORM) or next(iter(content.values()), {})
    body_schema = body.get("schema", {})
    properties.update(body_schema.get("properties", {}))
    required.extend(body_schema.get("required", []))
    return {"type": "object", "properties": properties, "required": required}


def validate_request(method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check decoded request parameters against the operation's schema; return a typed copy.

    Raises SpecError naming the offending parameter.
    """
    template, _ = _resolve_operation(method, path)
    schema = _params_schema(method.lower(), template)
    result: dict[str, Any] = _coerce_object(schema, params, "")
    return result


def _join(name: str, key: str | int) -> str:
    return f"{name}[{key}]" if name else str(key)


def _leaf(name: str) -> str:
    """The last named segment: "line_items[0][price_data][currency]" -> "currency"."""
    for part in reversed(re.split(r"[\[\]]+", name)):
        if part and not part.isdigit():
            return part
    return name


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _empty_error(name: str) -> SpecError:
    return SpecError(
        f"You passed an empty string for '{name}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{name}' cannot be unset. You should remove '{name}' "
        "from your request or supply a non-empty value.",
        param=name,
        code="parameter_invalid_empty",
    )


def _allows_empty(schema: dict[str, Any]) -> bool:
    return "" in schema.get("enum", ()) or any(
        "" in branch.get("enum", ()) for branch in schema.get("anyOf", ())
    )


def _coerce(schema: dict[str, Any], value: Any, name: str, *, allow_empty: bool = False) -> Any:
    if value == "":
        if allow_empty or _allows_empty(schema):
            return ""
        raise _empty_error(name)
    if "anyOf" in schema:
        return _coerce_any_of(schema["anyOf"], value, name)
    kind = schema.get("type")
    if kind == "object":
        return _coerce_object(schema, value, name)
    if kind == "array":
        return _coerce_array(schema, value, name)
    if kind == "string":
        return _coerce_string(schema, value, name)
    if kind == "integer":
        return _coerce_integer(value, name)
    if kind == "boolean":
        return _coerce_boolean(value, name)
    if kind == "number":
        return _coerce_number(value, name)
    return _copy(value)


def _shape_fits(branch: dict[str, Any], value: Any) -> bool:
    kind = branch.get("type")
    if isinstance(value, dict):
        return kind in ("object", "array")
    if isinstance(value, list):
        return kind in ("array", "object")
    return kind not in ("object", "array")


def _coerce_any_of(branches: list[dict[str, Any]], value: Any, name: str) -> Any:
    candidates = [b for b in branches if b.get("enum") != [""]]
    # Try the branches whose shape fits the value first so the error reported, when all
    # fail, is about the intended branch: "created=abc" is an invalid integer, not a hash.
    candidates.sort(key=lambda b: not _shape_fits(b, value))
    errors: list[SpecError] = []
    for branch in candidates:
        try:
            return _coerce(branch, value, name)
        except SpecError as exc:
            errors.append(exc)
    if not errors:
        raise _empty_error(name)
    # The error that got deepest into the value is the most specific one.
    raise max(errors, key=lambda e: len(e.param or ""))


def _coerce_object(schema: dict[str, Any], value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, list):
        # Form decoding turned all-digit keys into a list; a hash may legitimately have them.
        value = {str(i): item for i, item in enumerate(value)}
    if not isinstance(value, dict):
        raise SpecError("Invalid hash", param=name or None, code="parameter_invalid_object")
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties and extra is None:
        return {str(k): _copy(v) for k, v in value.items()}  # a free-form hash
    closed = extra is None or extra is False
    for key in value:
        if closed and key not in properties:
            full = _join(name, key)
            raise SpecError(
                f"Received unknown parameter: {full}", param=full, code="parameter_unknown"
            )
    for key in schema.get("required", ()):
        if key not in value:
            full = _join(name, key)
            raise SpecError(
                f"Missing required param: {full}.", param=full, code="parameter_missing"
            )
    result: dict[str, Any] = {}
    for key, item in value.items():
        full = _join(name, key)
        if key in properties:
            result[key] = _coerce(properties[key], item, full)
        elif isinstance(extra, dict):
            # Map values (metadata) may be "": that unsets the key.
            result[key] = _coerce(extra, item, full, allow_empty=True)
        else:
            result[key] = _copy(item)
    return result


def _coerce_array(schema: dict[str, Any], value: Any, name: str) -> list[Any]:
    if isinstance(value, dict):
        if not all(isinstance(k, str) and k.isdigit() for k in value):
            raise SpecError("Invalid array", param=name, code="parameter_invalid_array")
        pairs = sorted(value.items(), key=lambda kv: int(kv[0]))
    elif isinstance(value, list):
        pairs = [(str(i), item) for i, item in enumerate(value)]
    else:
        raise SpecError("Invalid array", param=name, code="parameter_invalid_array")
    items = schema.get("items", {})
    return [_coerce(items, item, _join(name, key)) for key, item in pairs]


def _coerce_string(schema: dict[str, Any], value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SpecError(
            f"Invalid string: {_render(value)}", param=name, code="parameter_invalid_string"
        )
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        choices = [c for c in enum if c != ""]
        listed = ", ".join(choices[:-1]) + f", or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise SpecError(
            f"Invalid {_leaf(name)}: must be one of {listed}",
            param=name,
            code="parameter_invalid_string",
        )
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise SpecError(
            f"Invalid string: {shown}; must be at most {max_length} characters",
            param=name,
            code="parameter_invalid_string",
        )
    if schema.get("format") == "decimal" and not _DECIMAL_RE.fullmatch(value):
        raise SpecError(f"Invalid decimal: {value}", param=name, code="parameter_invalid_decimal")
    return value


def _coerce_integer(value: Any, name: str) -> int:
    number: int | None = None
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or not -_INT64_LIMIT <= number < _INT64_LIMIT:
        raise SpecError(
            f"Invalid integer: {_render(value)}", param=name, code="parameter_invalid_integer"
        )
    return number


def _coerce_boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise SpecError(
        f"Invalid boolean: {_render(value)}", param=name, code="parameter_invalid_boolean"
    )


def _coerce_number(value: Any, name: str) -> float:
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise SpecError(
        f"Invalid number: {_render(value)}", param=name, code="parameter_invalid_number"
    )


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# Keywords that mean the same in OpenAPI 3.0 schemas and JSON Schema; the rest (description,
# title, x-stripe*, and "nullable", which is rewritten) are dropped.
_KEPT = frozenset(
    {"type", "enum", "required", "maxLength", "minLength", "pattern", "maximum", "minimum"}
)
_REF_PREFIX = "#/components/schemas/"


def _to_json_schema(schema: dict[str, Any], closed: bool) -> dict[str, Any]:
    """Rewrite one OpenAPI 3.0 schema as JSON Schema (2020-12).

    ``nullable: true`` becomes ``anyOf [..., null]``; ``$ref`` points into ``$defs``. Objects
    stay open (extra fields allowed) unless the spec says ``additionalProperties: false``,
    which Stripe's response schemas never do, or ``closed`` asks to treat every object with
    declared properties as complete. Expandable fields need no rewriting: the spec already
    writes each as ``anyOf [id string, object]``.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out["$ref"] = "#/$defs/" + value.removeprefix(_REF_PREFIX)
        elif key == "properties":
            out[key] = {name: _to_json_schema(sub, closed) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _to_json_schema(value, closed) if isinstance(value, dict) else value
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_to_json_schema(sub, closed) for sub in value]
        elif key in _KEPT:
            out[key] = value
    if closed and "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _json_schema_defs(closed: bool) -> dict[str, Any]:
    schemas = _spec()["components"]["schemas"]
    return {name: _to_json_schema(schema, closed) for name, schema in schemas.items()}


@functools.cache
def _response_validator(method: str, template: str, key: str, closed: bool) -> Any:
    operation = _spec()["paths"][template][method]
    response = operation.get("responses", {}).get(key)
    if response is None:
        return None
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    root = {"$defs": _json_schema_defs(closed), **_to_json_schema(schema, closed)}
    return jsonschema.Draft202012Validator(root)


def validate_response(
    method: str, path: str, status: int, body: Any, *, strict: bool = False
) -> list[str]:
    """Problems with a JSON response body for this operation and status; empty when valid.

    With ``strict``, a field the spec does not declare is a problem too (Stripe's schemas leave
    objects open, so by default unknown fields pass).
    """
    found = find_operation(method, path)
    if found is None:
        return [f"no operation {method.upper()} {path} in the spec"]
    template, operation = found
    responses = operation.get("responses", {})
    key = str(status)
    if key not in responses:
        if 200 <= status < 300:
            return [f"{method.upper()} {template} declares no {status} response"]
        key = "default"
    validator = _response_validator(method.lower(), template, key, strict)
    if validator is None:
        return [f"{method.upper()} {template} declares no JSON schema for {key}"]
    errors: Iterator[ValidationError] = validator.iter_errors(body)
    return sorted(_describe(error) for error in errors)


def _describe(error: ValidationError) -> str:
    detail = error
    while detail.context:
        # An anyOf failed: follow the branch that fits the value's type (an object that is
        # missing a field says so, rather than "is not of type 'null'").
        fitting = [sub for sub in detail.context if sub.validator != "type"]
        if not fitting:
            types = " or ".join(repr(sub.validator_value) for sub in detail.context)
            return f"{detail.json_path}: {detail.instance!r} is not of type {types}"
        detail = fitting[0]
    return f"{detail.json_path}: {detail.message}"
