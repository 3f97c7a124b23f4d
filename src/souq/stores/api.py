from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, status

from souq.auth.deps import CurrentUser
from souq.auth.models import User
from souq.config import Settings
from souq.deps import SessionDep, SettingsDep
from souq.money import format_amount
from souq.schemas import error_responses
from souq.stores import service
from souq.stores.models import Store, StoreMember
from souq.stores.schemas import (
    CommissionOut,
    CommissionUpdate,
    InvitationInput,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    MyInvitationOut,
    MyStoreOut,
    StoreCreate,
    StoreOut,
    StoreUpdate,
)

router = APIRouter(tags=["stores"])

MAX_ID = 2**31 - 1
StoreId = Annotated[int, Path(alias="storeId", ge=1, le=MAX_ID)]
UserId = Annotated[int, Path(alias="userId", ge=1, le=MAX_ID)]
InvitationId = Annotated[int, Path(alias="invitationId", ge=1, le=MAX_ID)]


def _member_out(member: StoreMember, user: User) -> MemberOut:
    return MemberOut(user_id=user.id, email=user.email, name=user.name, role=member.role)


@router.post(
    "/api/stores", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 422)
)
async def create_store(body: StoreCreate, user: CurrentUser, session: SessionDep) -> StoreOut:
    """Open a store; its creator becomes its owner."""
    store = await service.create_store(
        session,
        owner=user,
        name=body.name,
        country=body.country,
        default_currency=body.default_currency,
    )
    return StoreOut.model_validate(store)


@router.get("/api/me/stores", responses=error_responses(401))
async def my_stores(user: CurrentUser, session: SessionDep) -> list[MyStoreOut]:
    """The stores the caller is a member of, with the caller's role in each."""
    return [
        MyStoreOut.model_validate({**StoreOut.model_validate(store).model_dump(), "role": role})
        for store, role in await service.list_user_stores(session, user)
    ]


@router.get("/api/stores/{storeId}", responses=error_responses(401, 404))
async def get_store(store_id: StoreId, user: CurrentUser, session: SessionDep) -> StoreOut:
    """A store the caller is a member of."""
    store, _ = await service.require_store_role(session, store_id, user, service.READ_STORE)
    return StoreOut.model_validate(store)


@router.patch("/api/stores/{storeId}", responses=error_responses(401, 403, 404, 422))
async def update_store(
    store_id: StoreId, body: StoreUpdate, user: CurrentUser, session: SessionDep
) -> StoreOut:
    """Change a store's name, country or default currency (owner or admin)."""
    store, _ = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    await service.update_store(
        session,
        store,
        name=body.name,
        country=body.country,
        default_currency=body.default_currency,
    )
    return StoreOut.model_validate(store)


@router.get("/api/stores/{storeId}/members", responses=error_responses(401, 404))
async def list_members(
    store_id: StoreId, user: CurrentUser, session: SessionDep
) -> list[MemberOut]:
    """The store's members and their roles (any member)."""
    store, _ = await service.require_store_role(session, store_id, user, service.READ_STORE)
    return [_member_out(m, u) for m, u in await service.list_members(session, store)]


@router.post(
    "/api/stores/{storeId}/invitations",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def invite_member(
    store_id: StoreId,
    body: InvitationInput,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> InvitationOut:
    """Invite someone by email to join with a role (owner or admin; only owners invite
    owners). They become a member when they accept; the answer is the same whether or not
    the address has an account yet."""
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    invitation = await service.invite_member(
        session,
        store=store,
        actor=actor,
        email=body.email,
        role=body.role,
        ttl=timedelta(days=settings.store_invitation_ttl_days),
    )
    return InvitationOut.model_validate(invitation)


@router.get("/api/stores/{storeId}/invitations", responses=error_responses(401, 403, 404, 422))
async def list_invitations(
    store_id: StoreId, user: CurrentUser, session: SessionDep
) -> list[InvitationOut]:
    """The store's open invitations, expired ones included (owner or admin)."""
    store, _ = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    return [InvitationOut.model_validate(i) for i in await service.list_invitations(session, store)]


@router.delete(
    "/api/stores/{storeId}/invitations/{invitationId}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
async def withdraw_invitation(
    store_id: StoreId, invitation_id: InvitationId, user: CurrentUser, session: SessionDep
) -> None:
    """Withdraw an invitation (owner or admin; only owners withdraw an owner's)."""
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    await service.withdraw_invitation(
        session, store=store, actor=actor, invitation_id=invitation_id
    )


@router.get("/api/me/invitations", responses=error_responses(401))
async def my_invitations(user: CurrentUser, session: SessionDep) -> list[MyInvitationOut]:
    """The open invitations addressed to the caller's email."""
    return [
        MyInvitationOut.model_validate(
            {**InvitationOut.model_validate(invitation).model_dump(), "store_name": store.name}
        )
        for invitation, store in await service.list_my_invitations(session, user)
    ]


@router.post(
    "/api/me/invitations/{invitationId}/accept",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def accept_invitation(
    invitation_id: InvitationId, user: CurrentUser, session: SessionDep
) -> MemberOut:
    """Accept an invitation addressed to the caller's email: join the store with its role."""
    member, _store = await service.accept_invitation(session, user, invitation_id)
    return _member_out(member, user)


@router.post(
    "/api/me/invitations/{invitationId}/decline",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
async def decline_invitation(
    invitation_id: InvitationId, user: CurrentUser, session: SessionDep
) -> None:
    """Decline an invitation addressed to the caller's email."""
    await service.decline_invitation(session, user, invitation_id)


@router.patch(
    "/api/stores/{storeId}/members/{userId}", responses=error_responses(401, 403, 404, 409, 422)
)
async def change_member_role(
    store_id: StoreId, user_id: UserId, body: MemberUpdate, user: CurrentUser, session: SessionDep
) -> MemberOut:
    """Change a member's role (owner or admin; only owners change owners)."""
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    member = await service.change_member_role(
        session, store=store, actor=actor, user_id=user_id, role=body.role
    )
    target = await session.get(User, member.user_id)
    assert target is not None
    return _member_out(member, target)


@router.delete(
    "/api/stores/{storeId}/members/{userId}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409),
)
async def remove_member(
    store_id: StoreId, user_id: UserId, user: CurrentUser, session: SessionDep
) -> None:
    """Remove a member (owner or admin), or leave the store (any member, yourself)."""
    await service.remove_or_leave(session, store_id, user, user_id)


def _commission_out(store: Store, settings: Settings) -> CommissionOut:
    def shown(amounts: dict[str, int]) -> dict[str, str]:
        return {code: format_amount(amount, code) for code, amount in sorted(amounts.items())}

    return CommissionOut(
        store_id=store.id,
        bps=store.platform_fee_bps,
        effective_bps=service.commission_rule(store, settings, store.default_currency).bps,
        fixed=shown(store.commission_fixed or {}),
        minimum=shown(store.commission_minimum or {}),
        buyer_fee_bps=settings.buyer_fee_bps,
        transfer_timing=store.transfer_timing,
        effective_transfer_timing=service.transfer_timing(store, settings),
    )


@router.patch(
    "/api/admin/stores/{storeId}/commission", responses=error_responses(401, 403, 404, 422)
)
async def set_commission(
    store_id: StoreId,
    body: CommissionUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CommissionOut:
    """Set a store's commission: basis points, a fixed amount and a minimum per order and
    currency, and when its money is transferred (platform admins only). Orders already made
    keep the rule they were made with; the timing applies to orders paid afterwards."""
    store = await service.set_commission(
        session, store_id, user, body.model_dump(include=body.model_fields_set, by_alias=False)
    )
    return _commission_out(store, settings)
