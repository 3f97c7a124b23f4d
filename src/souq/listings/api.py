from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from souq.auth.deps import CurrentUser, OptionalUser
from souq.deps import SessionDep, SessionFactoryDep
from souq.errors import NotFound
from souq.listings import service
from souq.listings.cache import Page, catalogue_cache
from souq.listings.schemas import (
    ListingCreate,
    ListingDeleted,
    ListingOut,
    ListingPage,
    ListingUpdate,
)
from souq.schemas import currency_input, error_responses
from souq.stores.api import MAX_ID, StoreId
from souq.stores.service import MANAGE_LISTINGS, READ_STORE, require_store_role

router = APIRouter(tags=["listings"])

ListingId = Annotated[int, Path(alias="listingId", ge=1, le=MAX_ID)]


@router.post(
    "/api/stores/{storeId}/listings",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 422),
)
async def create_listing(
    store_id: StoreId, body: ListingCreate, user: CurrentUser, session: SessionDep
) -> ListingOut:
    """Add a listing to a store (owner, admin or seller)."""
    store, _ = await require_store_role(session, store_id, user, MANAGE_LISTINGS)
    currency = currency_input(body.currency)
    listing = await service.create_listing(
        session,
        store=store,
        name=body.name,
        description=body.description,
        price_amount=service.parse_price(body.price, currency),
        currency=currency,
        stock=body.stock,
    )
    return ListingOut.of(listing)


@router.patch("/api/listings/{listingId}", responses=error_responses(401, 403, 404, 409, 422))
async def update_listing(
    listing_id: ListingId, body: ListingUpdate, user: CurrentUser, session: SessionDep
) -> ListingOut:
    """Change a listing (owner, admin or seller of its store)."""
    listing = await service.require_listing_role(session, listing_id, user, MANAGE_LISTINGS)
    changes = service.ListingChanges(
        name=body.name,
        description=body.description,
        price=body.price,
        currency=body.currency,
        stock=body.stock,
        stock_set="stock" in body.model_fields_set,
        active=body.active,
    )
    await service.update_listing(session, listing, changes)
    return ListingOut.of(listing)


@router.delete("/api/listings/{listingId}", responses=error_responses(401, 403, 404))
async def delete_listing(
    listing_id: ListingId, user: CurrentUser, session: SessionDep
) -> ListingDeleted:
    """Delete a listing, or deactivate it if orders refer to it (owner, admin or seller)."""
    listing = await service.require_listing_role(session, listing_id, user, MANAGE_LISTINGS)
    deleted = await service.delete_listing(session, listing)
    return ListingDeleted(id=listing_id, outcome="deleted" if deleted else "deactivated")


@router.get("/api/listings", response_model=ListingPage, responses=error_responses(422))
async def catalogue(
    request: Request,
    factory: SessionFactoryDep,
    store_id: Annotated[int | None, Query(alias="storeId", ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="The nextCursor of the previous page.")
    ] = None,
) -> Response:
    """The public catalogue: active listings, newest first, optionally of one store."""

    async def load() -> tuple[Page, int]:
        # A read: no commit, and no transaction at all when the answer is cached.
        async with factory() as session:
            listings, next_id = await service.list_catalogue(
                session, store_id=store_id, after_id=cursor, limit=limit
            )
        page = ListingPage(
            items=[ListingOut.of(listing) for listing in listings],
            next_cursor=str(next_id) if next_id is not None else None,
        )
        body = Page.of(page.model_dump_json().encode())
        return body, len(body.body)

    page = await catalogue_cache(request).get(("api", store_id, cursor, limit), load)
    # The same for every caller: anyone may keep it, asking again with its ETag (a 304).
    headers = {"etag": page.etag, "cache-control": "no-cache"}
    if page.matches(request.headers.get("if-none-match")):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


@router.get("/api/listings/{listingId}", responses=error_responses(401, 404))
async def get_listing(listing_id: ListingId, user: OptionalUser, session: SessionDep) -> ListingOut:
    """A listing: active ones are public, inactive ones visible to its store's members."""
    listing = await service.get_listing(session, listing_id)
    if not listing.active:
        if user is None:
            raise NotFound("listing not found")
        await service.require_listing_role(session, listing_id, user, READ_STORE)
    return ListingOut.of(listing)
