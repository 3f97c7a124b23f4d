"""The OpenAPI document at /docs describes the accounts, stores and listings API in camelCase."""

from __future__ import annotations

from tests.helpers import anonymous
from tests.servers import LiveServer


def test_openapi_documents_the_routes_with_camel_case_schemas(live: LiveServer) -> None:
    with anonymous(live) as client:
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/auth/tokens", "post"),
        ("/api/stores", "post"),
        ("/api/stores/{storeId}", "patch"),
        ("/api/me/stores", "get"),
        ("/api/stores/{storeId}/invitations", "post"),
        ("/api/me/invitations/{invitationId}/accept", "post"),
        ("/api/auth/tokens", "get"),
        ("/api/auth/tokens/{tokenId}", "delete"),
        ("/api/auth/logout-all", "post"),
        ("/api/auth/password", "post"),
        ("/api/stores/{storeId}/members/{userId}", "delete"),
        ("/api/stores/{storeId}/listings", "post"),
        ("/api/listings/{listingId}", "delete"),
        ("/api/listings", "get"),
    ]:
        operation = paths[path][method]
        assert operation["description"] or operation["summary"], path
    schemas = spec["components"]["schemas"]
    assert "isPlatformAdmin" in schemas["UserOut"]["properties"]
    assert "csrfToken" in schemas["LoginOut"]["properties"]
    assert "defaultCurrency" in schemas["StoreCreate"]["properties"]
    assert "nextCursor" in schemas["ListingPage"]["properties"]
    register = paths["/api/auth/register"]["post"]["responses"]
    assert register["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
