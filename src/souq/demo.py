"""The demo marketplace `make run` loads: a platform admin, two stores with owners and sellers,
listings in USD, EUR and JPY, and a buyer. Loading twice adds nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth import service as auth
from souq.auth.models import User
from souq.listings.models import Listing
from souq.stores import service as stores
from souq.stores.models import Store, StoreMember, StoreRole

DEMO_PASSWORD = "souq-demo-2026"  # noqa: S105 - printed for the demo logins

DEMO_LOGINS = [
    ("admin@souq.test", "platform admin"),
    ("owner@atlas.test", "owner of Atlas Ceramics"),
    ("seller@atlas.test", "seller at Atlas Ceramics"),
    ("owner@kyoto.test", "owner of Kyoto Paper Co."),
    ("seller@kyoto.test", "seller at Kyoto Paper Co."),
    ("buyer@souq.test", "a buyer"),
]


@dataclass(frozen=True)
class DemoStore:
    name: str
    owner: tuple[str, str]
    seller: tuple[str, str]
    listings: list[tuple[str, str, int, str, int | None]]


STORES = [
    DemoStore(
        name="Atlas Ceramics",
        owner=("owner@atlas.test", "Amina Haddad"),
        seller=("seller@atlas.test", "Youssef Idrissi"),
        listings=[
            ("Tagine pot, large", "Hand-glazed clay tagine, 30 cm.", 4_500, "usd", 12),
            ("Espresso cups (set of 4)", "Blue-rimmed stoneware.", 2_999, "usd", None),
            ("Serving bowl", "Made to order in Fès.", 3_900, "eur", 5),
        ],
    ),
    DemoStore(
        name="Kyoto Paper Co.",
        owner=("owner@kyoto.test", "Haruto Sato"),
        seller=("seller@kyoto.test", "Yui Tanaka"),
        listings=[
            ("Washi notebook", "Hand-bound, 96 pages.", 1_800, "jpy", 30),
            ("Origami kit", "100 sheets, 15 cm.", 950, "jpy", None),
            ("Letterpress cards", "Set of 10 with envelopes.", 1_450, "eur", 1),
        ],
    ),
]


async def _user(
    session: AsyncSession, email: str, name: str, created: list[str], admin: bool = False
) -> User:
    existing = (
        await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    created.append(f"user {email}")
    return await auth.create_user(
        session, email=email, password=DEMO_PASSWORD, name=name, is_platform_admin=admin
    )


async def load_demo(session: AsyncSession, *, only_if_empty: bool = False) -> list[str] | None:
    """Returns what was created, or None when `only_if_empty` and users already exist."""
    if only_if_empty and (await session.execute(select(func.count(User.id)))).scalar_one() > 0:
        return None
    created: list[str] = []
    await _user(session, "admin@souq.test", "Platform Admin", created, admin=True)
    await _user(session, "buyer@souq.test", "Sam Buyer", created)
    for spec in STORES:
        owner_email, owner_name = spec.owner
        seller_email, seller_name = spec.seller
        owner = await _user(session, owner_email, owner_name, created)
        seller = await _user(session, seller_email, seller_name, created)
        store = (
            await session.execute(select(Store).where(Store.name == spec.name))
        ).scalar_one_or_none()
        if store is None:
            store = await stores.create_store(session, owner=owner, name=spec.name)
            created.append(f"store {store.name}")
        has_seller = (
            await session.execute(
                select(StoreMember.id).where(
                    StoreMember.store_id == store.id, StoreMember.user_id == seller.id
                )
            )
        ).scalar_one_or_none()
        if has_seller is None:
            session.add(StoreMember(store_id=store.id, user_id=seller.id, role=StoreRole.seller))
        for name, description, price, currency, stock in spec.listings:
            exists = (
                await session.execute(
                    select(Listing.id).where(Listing.store_id == store.id, Listing.name == name)
                )
            ).scalar_one_or_none()
            if exists is None:
                session.add(
                    Listing(
                        store_id=store.id,
                        name=name,
                        description=description,
                        price_amount=price,
                        currency=currency,
                        stock=stock,
                        active=True,
                    )
                )
                created.append(f"listing {name}")
    await session.flush()
    return created
