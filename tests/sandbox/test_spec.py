"""souq.sandbox.spec: Stripe's OpenAPI description as the judge of requests and responses."""

from __future__ import annotations

import copy
import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from souq.sandbox import spec
from souq.sandbox.spec import SpecError, find_operation, validate_request, validate_response

OPENAPI_DIR = Path(spec.__file__).parent / "openapi"


@functools.cache
def fixtures() -> dict[str, Any]:
    """The example objects Stripe publishes with the same spec, by resource name."""
    with gzip.open(OPENAPI_DIR / "fixtures3.json.gz", "rb") as fh:
        resources: dict[str, Any] = json.load(fh)["resources"]
    return resources


def fixture(name: str) -> Any:
    return copy.deepcopy(fixtures()[name])


def spec_document() -> dict[str, Any]:
    with gzip.open(OPENAPI_DIR / "spec3.json.gz", "rb") as fh:
        document: dict[str, Any] = json.load(fh)
    return document


# Every operation the sandbox serves, as the SDK calls it.
SERVED = [
    ("post", "/v1/accounts", "/v1/accounts"),
    ("get", "/v1/accounts/acct_1Abc", "/v1/accounts/{account}"),
    ("post", "/v1/accounts/acct_1Abc", "/v1/accounts/{account}"),
    ("delete", "/v1/accounts/acct_1Abc", "/v1/accounts/{account}"),
    ("post", "/v1/account_links", "/v1/account_links"),
    ("post", "/v1/accounts/acct_1Abc/login_links", "/v1/accounts/{account}/login_links"),
    ("post", "/v1/checkout/sessions", "/v1/checkout/sessions"),
    ("get", "/v1/checkout/sessions", "/v1/checkout/sessions"),
    ("get", "/v1/checkout/sessions/cs_test_a1", "/v1/checkout/sessions/{session}"),
    ("post", "/v1/checkout/sessions/cs_test_a1/expire", "/v1/checkout/sessions/{session}/expire"),
    (
        "get",
        "/v1/checkout/sessions/cs_test_a1/line_items",
        "/v1/checkout/sessions/{session}/line_items",
    ),
    ("post", "/v1/payment_intents", "/v1/payment_intents"),
    ("get", "/v1/payment_intents/pi_1", "/v1/payment_intents/{intent}"),
    ("post", "/v1/payment_intents/pi_1/confirm", "/v1/payment_intents/{intent}/confirm"),
    ("get", "/v1/charges/ch_1", "/v1/charges/{charge}"),
    ("post", "/v1/transfers", "/v1/transfers"),
    ("get", "/v1/transfers", "/v1/transfers"),
    ("get", "/v1/transfers/tr_1", "/v1/transfers/{transfer}"),
    ("post", "/v1/transfers/tr_1/reversals", "/v1/transfers/{id}/reversals"),
    ("get", "/v1/transfers/tr_1/reversals", "/v1/transfers/{id}/reversals"),
    ("get", "/v1/application_fees/fee_1", "/v1/application_fees/{id}"),
    ("post", "/v1/application_fees/fee_1/refunds", "/v1/application_fees/{id}/refunds"),
    ("get", "/v1/application_fees/fee_1/refunds", "/v1/application_fees/{id}/refunds"),
    ("post", "/v1/refunds", "/v1/refunds"),
    ("get", "/v1/refunds/re_1", "/v1/refunds/{refund}"),
    ("get", "/v1/disputes/dp_1", "/v1/disputes/{dispute}"),
    ("post", "/v1/disputes/dp_1/close", "/v1/disputes/{dispute}/close"),
    ("get", "/v1/balance", "/v1/balance"),
    ("get", "/v1/balance_transactions/txn_1", "/v1/balance_transactions/{id}"),
    ("get", "/v1/events", "/v1/events"),
    ("get", "/v1/events/evt_1", "/v1/events/{id}"),
    ("post", "/v1/webhook_endpoints", "/v1/webhook_endpoints"),
    ("get", "/v1/webhook_endpoints", "/v1/webhook_endpoints"),
    ("delete", "/v1/webhook_endpoints/we_1", "/v1/webhook_endpoints/{webhook_endpoint}"),
]


@pytest.mark.parametrize(("method", "path", "template"), SERVED, ids=lambda v: str(v))
def test_find_operation_maps_served_paths_to_their_template(
    method: str, path: str, template: str
) -> None:
    found = find_operation(method.upper(), path)
    assert found is not None
    assert found[0] == template
    assert found[1] == spec_document_paths()[template][method]


@functools.cache
def spec_document_paths() -> dict[str, Any]:
    paths: dict[str, Any] = spec_document()["paths"]
    return paths


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        # A literal segment beats a templated one in the same position.
        ("get", "/v1/charges/search", "/v1/charges/search"),
        ("get", "/v1/balance/history", "/v1/balance/history"),
        (
            "get",
            "/v1/application_fees/fee_1/refunds/fr_1",
            "/v1/application_fees/{fee}/refunds/{id}",
        ),
        (
            "get",
            "/v1/checkout/sessions/cs_1?expand[0]=line_items",
            "/v1/checkout/sessions/{session}",
        ),
    ],
)
def test_find_operation_prefers_literal_segments(method: str, path: str, template: str) -> None:
    found = find_operation(method, path)
    assert found is not None
    assert found[0] == template


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/nothing_here"),
        ("put", "/v1/charges/ch_1"),
        ("delete", "/v1/charges/ch_1"),
        ("post", "/v1/checkout/sessions/cs_1/line_items"),
        ("get", "/v1//charges"),
        ("get", "/v2/charges"),
    ],
)
def test_find_operation_returns_none_where_stripe_has_no_operation(method: str, path: str) -> None:
    assert find_operation(method, path) is None


def test_every_operation_in_the_spec_is_found_and_validates_an_empty_request() -> None:
    for template, item in spec_document_paths().items():
        for method in item:
            concrete = re.sub(r"\{[^}]+\}", "id_1", template)
            found = find_operation(method, concrete)
            assert found is not None and found[0] == template, (method, template)
            try:
                assert isinstance(validate_request(method, concrete, {}), dict)
            except SpecError as exc:
                assert exc.code == "parameter_missing", (method, template, exc.message)


CHECKOUT_PARAMS: dict[str, Any] = {
    "mode": "payment",
    "success_url": "http://localhost/orders/1/paid?session={CHECKOUT_SESSION_ID}",
    "cancel_url": "http://localhost/orders/1",
    "customer_email": "buyer@example.com",
    "client_reference_id": "order-1",
    "expires_at": "1700003600",
    "metadata": {"order_id": "1"},
    "expand": ["payment_intent"],
    "line_items": [
        {
            "quantity": "2",
            "price_data": {
                "currency": "usd",
                "unit_amount": "1250",
                "product_data": {"name": "Brass lamp", "metadata": {"listing_id": "7"}},
            },
        },
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount_decimal": "99.5",
                "product_data": {"name": "Candle"},
            },
        },
    ],
    "payment_intent_data": {
        "application_fee_amount": "250",
        "transfer_data": {"destination": "acct_1Abc"},
        "transfer_group": "order-1",
        "metadata": {"order_id": "1"},
        "capture_method": "automatic",
    },
    "payment_method_types": ["card"],
}


def test_checkout_session_create_is_coerced_to_typed_values() -> None:
    params = copy.deepcopy(CHECKOUT_PARAMS)
    result = validate_request("POST", "/v1/checkout/sessions", params)

    assert result["expires_at"] == 1700003600
    first, second = result["line_items"]
    assert first["quantity"] == 2
    assert first["price_data"]["unit_amount"] == 1250
    assert first["price_data"]["currency"] == "usd"
    assert first["price_data"]["product_data"] == {
        "name": "Brass lamp",
        "metadata": {"listing_id": "7"},
    }
    assert second["price_data"]["unit_amount_decimal"] == "99.5"  # a decimal stays a string
    pid = result["payment_intent_data"]
    assert pid["application_fee_amount"] == 250
    assert pid["transfer_data"] == {"destination": "acct_1Abc"}
    assert pid["metadata"] == {"order_id": "1"}
    assert result["expand"] == ["payment_intent"]
    assert result["payment_method_types"] == ["card"]
    assert result["metadata"] == {"order_id": "1"}
    # A copy: the caller's tree is untouched.
    assert params == CHECKOUT_PARAMS
    result["line_items"][0]["price_data"]["product_data"]["metadata"]["x"] = "y"
    assert "x" not in params["line_items"][0]["price_data"]["product_data"]["metadata"]


def test_booleans_integers_and_nested_hashes_are_coerced() -> None:
    result = validate_request(
        "POST",
        "/v1/accounts",
        {
            "type": "express",
            "country": "US",
            "email": "seller@example.com",
            "capabilities": {
                "card_payments": {"requested": "true"},
                "transfers": {"requested": "false"},
            },
            "business_profile": {"name": "Lamp shop", "url": "https://lamps.example"},
        },
    )
    assert result["capabilities"] == {
        "card_payments": {"requested": True},
        "transfers": {"requested": False},
    }

    refund = validate_request(
        "POST",
        "/v1/refunds",
        {
            "payment_intent": "pi_1",
            "amount": "500",
            "reason": "requested_by_customer",
            "reverse_transfer": "true",
            "refund_application_fee": "false",
        },
    )
    assert refund["amount"] == 500
    assert refund["reverse_transfer"] is True
    assert refund["refund_application_fee"] is False


def test_query_parameters_with_deep_objects_are_coerced() -> None:
    result = validate_request(
        "GET",
        "/v1/events",
        {
            "created": {"gte": "1700000000", "lt": "1800000000"},
            "limit": "3",
            "starting_after": "evt_1",
            "type": "checkout.session.completed",
            "expand": ["data.data.object"],
        },
    )
    assert result == {
        "created": {"gte": 1700000000, "lt": 1800000000},
        "limit": 3,
        "starting_after": "evt_1",
        "type": "checkout.session.completed",
        "expand": ["data.data.object"],
    }
    # `created` is anyOf [range hash, integer]: a bare timestamp is the integer branch.
    assert validate_request("GET", "/v1/events", {"created": "1700000000"}) == {
        "created": 1700000000
    }


def test_empty_string_unsets_where_the_schema_allows_it() -> None:
    result = validate_request(
        "POST",
        "/v1/accounts/acct_1Abc",
        {"metadata": "", "business_profile": {"support_url": ""}},
    )
    assert result == {"metadata": "", "business_profile": {"support_url": ""}}
    # One metadata key is unset with an empty value.
    result = validate_request("POST", "/v1/accounts/acct_1Abc", {"metadata": {"a": "", "b": "2"}})
    assert result == {"metadata": {"a": "", "b": "2"}}


def test_arrays_given_as_index_dicts_become_ordered_lists() -> None:
    params = copy.deepcopy(CHECKOUT_PARAMS)
    params["line_items"] = {
        "1": params["line_items"][1],
        "0": params["line_items"][0],
    }
    params["expand"] = {"0": "payment_intent", "1": "line_items"}
    result = validate_request("POST", "/v1/checkout/sessions", params)
    assert [item["price_data"]["product_data"]["name"] for item in result["line_items"]] == [
        "Brass lamp",
        "Candle",
    ]
    assert result["expand"] == ["payment_intent", "line_items"]


def test_metadata_with_digit_keys_survives_list_decoding() -> None:
    # A caller that turned metadata[0]=a into a list must still get a hash back.
    result = validate_request("POST", "/v1/transfers/tr_1", {"metadata": ["a", "b"]})
    assert result == {"metadata": {"0": "a", "1": "b"}}


def checkout_with(**changes: Any) -> dict[str, Any]:
    params = copy.deepcopy(CHECKOUT_PARAMS)
    params.update(changes)
    return params


def with_price_data(**changes: Any) -> dict[str, Any]:
    params = copy.deepcopy(CHECKOUT_PARAMS)
    params["line_items"][0]["price_data"].update(changes)
    return params


def without_price_data(key: str) -> dict[str, Any]:
    params = copy.deepcopy(CHECKOUT_PARAMS)
    del params["line_items"][0]["price_data"][key]
    return params


REJECTED = [
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        with_price_data(foo="1"),
        "parameter_unknown",
        "line_items[0][price_data][foo]",
        "Received unknown parameter: line_items[0][price_data][foo]",
        id="unknown-nested",
    ),
    pytest.param(
        "post",
        "/v1/accounts",
        {"type": "express", "bogus": "1"},
        "parameter_unknown",
        "bogus",
        "Received unknown parameter: bogus",
        id="unknown-top-level",
    ),
    pytest.param(
        "get",
        "/v1/events",
        {"created": {"after": "1"}},
        "parameter_unknown",
        "created[after]",
        "Received unknown parameter: created[after]",
        id="unknown-deep-object-query",
    ),
    pytest.param(
        "get",
        "/v1/balance",
        {"limit": "3"},
        "parameter_unknown",
        "limit",
        "Received unknown parameter: limit",
        id="unknown-on-get",
    ),
    pytest.param(
        "post",
        "/v1/account_links",
        {"account": "acct_1Abc", "type": "account_onboarding"},
        None,
        None,
        None,
        id="account-link-ok",
    ),
    pytest.param(
        "post",
        "/v1/account_links",
        {"type": "account_onboarding"},
        "parameter_missing",
        "account",
        "Missing required param: account.",
        id="missing-top-level",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        without_price_data("currency"),
        "parameter_missing",
        "line_items[0][price_data][currency]",
        "Missing required param: line_items[0][price_data][currency].",
        id="missing-nested",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        with_price_data(unit_amount="12.50"),
        "parameter_invalid_integer",
        "line_items[0][price_data][unit_amount]",
        "Invalid integer: 12.50",
        id="integer",
    ),
    pytest.param(
        "post",
        "/v1/transfers",
        {"amount": "99999999999999999999", "currency": "usd", "destination": "acct_1"},
        "parameter_invalid_integer",
        "amount",
        "Invalid integer: 99999999999999999999",
        id="integer-overflow",
    ),
    pytest.param(
        "get",
        "/v1/events",
        {"created": "yesterday"},
        "parameter_invalid_integer",
        "created",
        "Invalid integer: yesterday",
        id="integer-in-any-of",
    ),
    pytest.param(
        "post",
        "/v1/refunds",
        {"charge": "ch_1", "reverse_transfer": "yes"},
        "parameter_invalid_boolean",
        "reverse_transfer",
        "Invalid boolean: yes",
        id="boolean",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        with_price_data(unit_amount_decimal="1,5"),
        "parameter_invalid_decimal",
        "line_items[0][price_data][unit_amount_decimal]",
        "Invalid decimal: 1,5",
        id="decimal",
    ),
    pytest.param(
        "post",
        "/v1/accounts",
        {"type": "premium"},
        "parameter_invalid_string",
        "type",
        "Invalid type: must be one of custom, express, or standard",
        id="enum",
    ),
    pytest.param(
        "post",
        "/v1/refunds",
        {"charge": "ch_1", "reason": "changed_mind"},
        "parameter_invalid_string",
        "reason",
        "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
        id="enum-refund-reason",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        checkout_with(
            payment_intent_data={"statement_descriptor": "A" * 23},
        ),
        "parameter_invalid_string",
        "payment_intent_data[statement_descriptor]",
        "Invalid string: AAAAAAAAAAAAAAAAAAAA...; must be at most 22 characters",
        id="max-length",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        checkout_with(customer_email={"address": "x"}),
        "parameter_invalid_string",
        "customer_email",
        'Invalid string: {"address": "x"}',
        id="hash-for-string",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        checkout_with(payment_intent_data="acct_1"),
        "parameter_invalid_object",
        "payment_intent_data",
        "Invalid hash",
        id="string-for-hash",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        checkout_with(line_items="lamp"),
        "parameter_invalid_array",
        "line_items",
        "Invalid array",
        id="string-for-array",
    ),
    pytest.param(
        "post",
        "/v1/checkout/sessions",
        checkout_with(customer_email=""),
        "parameter_invalid_empty",
        "customer_email",
        "You passed an empty string for 'customer_email'.",
        id="empty-not-unsettable",
    ),
    pytest.param(
        "post",
        "/v1/accounts/acct_1Abc",
        {"metadata": {"order": {"id": "1"}}},
        "parameter_invalid_string",
        "metadata[order]",
        'Invalid string: {"id": "1"}',
        id="metadata-value-hash",
    ),
]


@pytest.mark.parametrize(("method", "path", "params", "code", "param", "message"), REJECTED)
def test_invalid_requests_are_rejected_naming_the_param(
    method: str,
    path: str,
    params: dict[str, Any],
    code: str | None,
    param: str | None,
    message: str | None,
) -> None:
    if code is None:
        assert isinstance(validate_request(method, path, params), dict)
        return
    with pytest.raises(SpecError) as caught:
        validate_request(method, path, params)
    assert caught.value.code == code
    assert caught.value.param == param
    assert caught.value.message.startswith(message or "")
    assert caught.value.status == 400
    assert str(caught.value) == caught.value.message


def test_unknown_url_is_a_404_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        validate_request("POST", "/v1/teleport", {})
    assert caught.value.code == "unrecognized_url"
    assert caught.value.status == 404
    assert caught.value.param is None
    assert "POST: /v1/teleport" in caught.value.message


RESPONSE_FIXTURES = [
    ("get", "/v1/accounts/acct_1", "account"),
    ("post", "/v1/accounts", "account"),
    ("delete", "/v1/accounts/acct_1", "deleted_account"),
    ("post", "/v1/account_links", "account_link"),
    ("post", "/v1/accounts/acct_1/login_links", "login_link"),
    ("post", "/v1/checkout/sessions", "checkout.session"),
    ("get", "/v1/checkout/sessions/cs_1", "checkout.session"),
    ("post", "/v1/checkout/sessions/cs_1/expire", "checkout.session"),
    ("get", "/v1/payment_intents/pi_1", "payment_intent"),
    ("get", "/v1/charges/ch_1", "charge"),
    ("get", "/v1/transfers/tr_1", "transfer"),
    ("post", "/v1/transfers/tr_1/reversals", "transfer_reversal"),
    ("get", "/v1/application_fees/fee_1", "application_fee"),
    ("post", "/v1/application_fees/fee_1/refunds", "fee_refund"),
    ("post", "/v1/refunds", "refund"),
    ("get", "/v1/disputes/dp_1", "dispute"),
    ("post", "/v1/disputes/dp_1/close", "dispute"),
    ("get", "/v1/balance", "balance"),
    ("get", "/v1/balance_transactions/txn_1", "balance_transaction"),
    ("get", "/v1/events/evt_1", "event"),
    ("post", "/v1/webhook_endpoints", "webhook_endpoint"),
    ("delete", "/v1/webhook_endpoints/we_1", "deleted_webhook_endpoint"),
]


@pytest.mark.parametrize(("method", "path", "resource"), RESPONSE_FIXTURES)
def test_validate_response_accepts_stripes_own_fixtures(
    method: str, path: str, resource: str
) -> None:
    assert validate_response(method, path, 200, fixture(resource)) == []


@pytest.mark.parametrize(
    ("method", "path", "item", "url"),
    [
        ("get", "/v1/checkout/sessions", "checkout.session", "/v1/checkout/sessions"),
        ("get", "/v1/checkout/sessions/cs_1/line_items", "item", "/v1/checkout/sessions/cs_1"),
        ("get", "/v1/events", "event", "/v1/events"),
        ("get", "/v1/webhook_endpoints", "webhook_endpoint", "/v1/webhook_endpoints"),
        (
            "get",
            "/v1/transfers/tr_1/reversals",
            "transfer_reversal",
            "/v1/transfers/tr_1/reversals",
        ),
    ],
)
def test_validate_response_accepts_lists(method: str, path: str, item: str, url: str) -> None:
    body = {"object": "list", "data": [fixture(item)], "has_more": False, "url": url}
    assert validate_response(method, path, 200, body) == []
    body["data"] = [{"id": 1}]
    assert validate_response(method, path, 200, body) != []


def test_validate_response_reports_wrong_types_and_missing_fields() -> None:
    charge = fixture("charge")
    charge["amount"] = "1000"
    del charge["currency"]
    charge["balance_transaction"] = {"id": "txn_1"}  # expanded, but not a balance transaction
    charge["paid"] = None  # not nullable
    problems = validate_response("get", "/v1/charges/ch_1", 200, charge)
    assert "$.amount: '1000' is not of type 'integer'" in problems
    assert "$: 'currency' is a required property" in problems
    assert any(p.startswith("$.balance_transaction: ") for p in problems)
    assert "$.paid: None is not of type 'boolean'" in problems
    assert len(problems) == 4


def test_validate_response_accepts_expandable_fields_as_id_or_object_and_nullables() -> None:
    charge = fixture("charge")
    charge["balance_transaction"] = "txn_1"
    assert validate_response("get", "/v1/charges/ch_1", 200, charge) == []
    charge["balance_transaction"] = fixture("balance_transaction")
    assert validate_response("get", "/v1/charges/ch_1", 200, charge) == []
    charge["balance_transaction"] = None  # nullable in the spec
    assert validate_response("get", "/v1/charges/ch_1", 200, charge) == []


def test_validate_response_rejects_bad_enum_and_wrong_object() -> None:
    session = fixture("checkout.session")
    session["status"] = "finished"
    session["object"] = "session"
    problems = validate_response("get", "/v1/checkout/sessions/cs_1", 200, session)
    assert len(problems) == 2
    assert all(p.startswith(("$.status: ", "$.object: ")) for p in problems)


def test_validate_response_checks_errors_against_the_default_response() -> None:
    error = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such charge: 'ch_1'",
            "param": "id",
        }
    }
    assert validate_response("get", "/v1/charges/ch_1", 404, error) == []
    error["error"]["type"] = "not_found"
    assert validate_response("get", "/v1/charges/ch_1", 404, error) == [
        "$.error.type: 'not_found' is not one of "
        "['api_error', 'card_error', 'idempotency_error', 'invalid_request_error']"
    ]
    assert validate_response("get", "/v1/charges/ch_1", 400, {"message": "x"}) == [
        "$: 'error' is a required property"
    ]


def test_validate_response_reports_unknown_operations_and_statuses() -> None:
    assert validate_response("get", "/v1/teleport", 200, {}) != []
    assert validate_response("get", "/v1/charges/ch_1", 201, fixture("charge")) != []


def test_every_fixture_validates_against_every_operation_returning_it() -> None:
    checked = 0
    for template, item in spec_document_paths().items():
        for method, operation in item.items():
            content = operation["responses"].get("200", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            name = ref.removeprefix("#/components/schemas/")
            # Stripe's treasury.outbound_payment fixture lacks a field its own schema requires.
            if name not in fixtures() or name == "treasury.outbound_payment":
                continue
            concrete = re.sub(r"\{[^}]+\}", "id_1", template)
            assert validate_response(method, concrete, 200, fixture(name)) == [], (
                method,
                template,
            )
            checked += 1
    assert checked > 300


def test_a_null_where_the_spec_omits_the_field_names_the_allowed_types() -> None:
    charge = fixture("charge")
    charge["transfer"] = None  # optional but not nullable: Stripe leaves it out instead
    assert validate_response("get", "/v1/charges/ch_1", 200, charge) == [
        "$.transfer: None is not of type 'string' or 'object'"
    ]


def test_strict_validation_reports_fields_the_spec_does_not_define() -> None:
    account = fixture("account")
    account["controller"] = {"type": "application", "is_controller": True, "losses": {}}
    account["_internal"] = "x"
    assert validate_response("get", "/v1/accounts/acct_1", 200, account) == []
    assert validate_response("get", "/v1/accounts/acct_1", 200, account, strict=True) == [
        "$.controller: Additional properties are not allowed ('losses' was unexpected)",
        "$: Additional properties are not allowed ('_internal' was unexpected)",
    ]
    # Free-form hashes stay open: metadata takes any key.
    account = fixture("account")
    account["metadata"] = {"anything": "goes"}
    assert validate_response("get", "/v1/accounts/acct_1", 200, account, strict=True) == []
