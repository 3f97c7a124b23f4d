"""Store members: adding by email, roles, and the rule that a store keeps an owner."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import Account, add_member, api_user, create_store, error_code, store_team
from tests.servers import LiveServer


def role_of(live: LiveServer, store_id: int, user_id: int) -> str | None:
    role: str | None = live.scalar(
        "SELECT role FROM store_member WHERE store_id = :s AND user_id = :u", s=store_id, u=user_id
    )
    return role


def test_the_team_helper_builds_one_member_of_each_role(live: LiveServer) -> None:
    with store_team(live) as team:
        members = team.owner.client.get(f"/api/stores/{team.id}/members").json()
        assert sorted((m["email"], m["role"]) for m in members) == sorted(
            [
                (team.owner.email, "owner"),
                (team.admin.email, "admin"),
                (team.seller.email, "seller"),
            ]
        )
        mine = team.seller.client.get("/api/me/stores").json()
    assert [(s["id"], s["role"]) for s in mine] == [(team.id, "seller")]


def test_members_are_found_by_email_in_any_case(live: LiveServer) -> None:
    with api_user(live) as owner, api_user(live) as other:
        store = create_store(owner)
        response = add_member(owner, store["id"], other.email.upper(), "seller")
        assert response.status_code == 201
        assert response.json() == {
            "userId": other.id,
            "email": other.email,
            "name": other.name,
            "role": "seller",
        }
        assert other.client.get(f"/api/stores/{store['id']}").status_code == 200


def test_duplicates_are_refused(live: LiveServer) -> None:
    with api_user(live) as owner, api_user(live) as other:
        store = create_store(owner)
        assert add_member(owner, store["id"], other.email, "seller").status_code == 201
        again = add_member(owner, store["id"], other.email, "admin")
        assert again.status_code == 409
        assert error_code(again) == "member_exists"
        assert role_of(live, store["id"], other.id) == "seller"


@pytest.mark.parametrize("role", ["manager", "OWNER", "", None])
def test_unknown_roles_are_422(live: LiveServer, role: Any) -> None:
    with api_user(live) as owner, api_user(live) as other:
        store = create_store(owner)
        response = add_member(owner, store["id"], other.email, role)
    assert response.status_code == 422
    assert role_of(live, store["id"], other.id) is None


def test_only_owners_make_owners(live: LiveServer) -> None:
    with store_team(live) as team, api_user(live) as newcomer:
        by_admin = add_member(team.admin, team.id, newcomer.email, "owner")
        assert by_admin.status_code == 403
        assert role_of(live, team.id, newcomer.id) is None
        promote = team.admin.client.patch(
            f"/api/stores/{team.id}/members/{team.seller.id}", json={"role": "owner"}
        )
        assert promote.status_code == 403
        assert role_of(live, team.id, team.seller.id) == "seller"
        assert add_member(team.owner, team.id, newcomer.email, "owner").status_code == 201
        assert role_of(live, team.id, newcomer.id) == "owner"


def test_admins_cannot_remove_or_demote_owners(live: LiveServer) -> None:
    with store_team(live) as team:
        path = f"/api/stores/{team.id}/members/{team.owner.id}"
        assert team.admin.client.delete(path).status_code == 403
        assert team.admin.client.patch(path, json={"role": "seller"}).status_code == 403
        assert role_of(live, team.id, team.owner.id) == "owner"


def test_admins_manage_admins_and_sellers(live: LiveServer) -> None:
    with store_team(live) as team:
        path = f"/api/stores/{team.id}/members/{team.seller.id}"
        response = team.admin.client.patch(path, json={"role": "admin"})
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
        assert team.admin.client.delete(path).status_code == 204
        assert role_of(live, team.id, team.seller.id) is None
        assert team.seller.client.get(f"/api/stores/{team.id}").status_code == 404


def test_the_last_owner_can_be_neither_removed_nor_demoted(live: LiveServer) -> None:
    with store_team(live) as team:
        path = f"/api/stores/{team.id}/members/{team.owner.id}"
        demote = team.owner.client.patch(path, json={"role": "admin"})
        assert demote.status_code == 409
        assert error_code(demote) == "last_owner"
        remove = team.owner.client.delete(path)
        assert remove.status_code == 409
        assert role_of(live, team.id, team.owner.id) == "owner"


def test_with_two_owners_one_may_step_down(live: LiveServer) -> None:
    with store_team(live) as team:
        promote = team.owner.client.patch(
            f"/api/stores/{team.id}/members/{team.admin.id}", json={"role": "owner"}
        )
        assert promote.status_code == 200
        path = f"/api/stores/{team.id}/members/{team.owner.id}"
        assert team.owner.client.patch(path, json={"role": "seller"}).status_code == 200
        assert role_of(live, team.id, team.owner.id) == "seller"
        # The new sole owner is now the last one.
        last = f"/api/stores/{team.id}/members/{team.admin.id}"
        assert team.admin.client.delete(last).status_code == 409


def test_a_seller_may_leave_but_not_remove_others(live: LiveServer) -> None:
    with store_team(live) as team:
        other = f"/api/stores/{team.id}/members/{team.admin.id}"
        assert team.seller.client.delete(other).status_code == 403
        assert role_of(live, team.id, team.admin.id) == "admin"
        own = f"/api/stores/{team.id}/members/{team.seller.id}"
        assert team.seller.client.delete(own).status_code == 204
        assert role_of(live, team.id, team.seller.id) is None


def test_removing_a_non_member_is_404(live: LiveServer) -> None:
    with store_team(live) as team, api_user(live) as stranger:
        response = team.owner.client.delete(f"/api/stores/{team.id}/members/{stranger.id}")
    assert response.status_code == 404


def test_concurrent_adds_of_one_member_make_one_membership(live: LiveServer) -> None:
    with store_team(live) as team, api_user(live) as newcomer:

        def attempt(actor: Account) -> int:
            return add_member(actor, team.id, newcomer.email, "seller").status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = sorted(pool.map(attempt, [team.owner, team.admin] * 2))
    assert statuses == [201, 409, 409, 409]
    count = live.scalar(
        "SELECT count(*) FROM store_member WHERE store_id = :s AND user_id = :u",
        s=team.id,
        u=newcomer.id,
    )
    assert count == 1
