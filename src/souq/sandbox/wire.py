"""Stripe's wire format: nested form keys in, typed values out, lists and expansion."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from souq.sandbox.errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_form(text: str) -> dict[str, Any]:
    """`a[b][0][c]=x&expand[]=y` → {"a": {"b": [{"c": "x"}]}, "expand": ["y"]}, string leaves."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if match is None:
            raise invalid(f"Invalid parameter name: {raw_key}", param=raw_key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                # `a[]` appends: keep an auto-index counter per container.
                part = str(sum(1 for k in node if k.isdigit())) if isinstance(node, dict) else "0"
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def as_int(value: Any, param: str) -> int:
    if isinstance(value, bool):
        raise invalid(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise invalid(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")


def as_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid(f"Invalid boolean: {value}", param=param, code="parameter_invalid_boolean")


def as_str(value: Any, param: str) -> str:
    if isinstance(value, str):
        return value
    raise invalid(f"Invalid string: {value}", param=param, code="parameter_invalid_string")


def opt_int(params: dict[str, Any], key: str, param: str | None = None) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    return as_int(value, param or key)


def opt_str(params: dict[str, Any], key: str, param: str | None = None) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    return as_str(value, param or key)


def opt_bool(params: dict[str, Any], key: str, param: str | None = None) -> bool | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    return as_bool(value, param or key)


def missing_param(name: str) -> Exception:
    return invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")


def req_str(params: dict[str, Any], key: str, param: str | None = None) -> str:
    value = opt_str(params, key, param)
    if value is None:
        raise missing_param(param or key)
    return value


def req_int(params: dict[str, Any], key: str, param: str | None = None) -> int:
    value = opt_int(params, key, param)
    if value is None:
        raise missing_param(param or key)
    return value


def sub(params: dict[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {key}", param=key, code="parameter_invalid_object")
    return value


def paginate(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """Stripe's cursor pagination over a newest-first list."""
    limit = opt_int(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    after = opt_str(params, "starting_after")
    before = opt_str(params, "ending_before")
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise invalid(
                f"No such object: '{after}'", param="starting_after", code="resource_missing"
            )
        items = items[ids.index(after) + 1 :]
        page = items[:limit]
        has_more = len(items) > limit
    elif before is not None:
        ids = [i["id"] for i in items]
        if before not in ids:
            raise invalid(
                f"No such object: '{before}'", param="ending_before", code="resource_missing"
            )
        items = items[: ids.index(before)]
        page = items[-limit:]
        has_more = len(items) > limit
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def expand(obj: Any, paths: list[str], load: Callable[[str], dict[str, Any] | None]) -> Any:
    """Replace id strings by their objects along dotted paths (`latest_charge.balance_transaction`);
    a list response expands `data.x` in every item."""
    for path in paths:
        _expand_path(obj, path.split("."), load)
    return obj


def _expand_path(obj: Any, parts: list[str], load: Callable[[str], dict[str, Any] | None]) -> None:
    if not parts or not isinstance(obj, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "data" and obj.get("object") == "list" and isinstance(obj.get("data"), list):
        for item in obj["data"]:
            _expand_path(item, rest, load)
        return
    value = obj.get(head)
    if isinstance(value, str):
        loaded = load(value)
        if loaded is not None:
            obj[head] = value = loaded
    if isinstance(value, dict):
        _expand_path(value, rest, load)
    elif isinstance(value, list):
        for item in value:
            _expand_path(item, rest, load)


def in_range(value: int, bound: Any) -> bool:
    """Stripe's range filter on a timestamp: an exact value or `{gt, gte, lt, lte}`."""
    if isinstance(bound, dict):
        checks = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
        return all(checks[op](value, int(limit)) for op, limit in bound.items() if op in checks)
    return value == int(str(bound))
