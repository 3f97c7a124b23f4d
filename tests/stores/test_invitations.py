"""Joining a store takes the invitee's consent: managers invite an email address, the person
with that address accepts or declines, and inviting never tells which addresses have accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from souq.stores.models import StoreInvitation
from tests.helpers import (
    PASSWORD,
    anonymous,
    api_user,
    create_store,
    error_code,
    invite,
    store_team,
    unique_email,
)


def is_member(live: Any, store_id: int, user_id: int) -> bool:
    return bool(
        live.scalar(
            "SELECT count(*) FROM store_member WHERE store_id = :s AND user_id = :u",
            s=store_id,
            u=user_id,
        )
    )


def test_a_user_joins_only_by_accepting(live: Any) -> None:
    with api_user(live) as owner, api_user(live, name="Grace") as grace:
        store = create_store(owner, name="Consent Store")
        invited = invite(owner, store["id"], grace.email.upper(), "seller")
        assert invited.status_code == 201, invited.text
        invitation = invited.json()
        assert invitation["email"] == grace.email.lower() and invitation["role"] == "seller"
        # Not a member yet: the store stays invisible to them.
        assert not is_member(live, store["id"], grace.id)
        assert grace.client.get(f"/api/stores/{store['id']}").status_code == 404
        mine = grace.client.get("/api/me/invitations").json()
        assert [(i["id"], i["storeName"], i["role"]) for i in mine] == [
            (invitation["id"], "Consent Store", "seller")
        ]
        accepted = grace.client.post(f"/api/me/invitations/{invitation['id']}/accept")
        assert accepted.status_code == 201, accepted.text
        assert accepted.json() == {
            "userId": grace.id,
            "email": grace.email,
            "name": "Grace",
            "role": "seller",
        }
        assert grace.client.get(f"/api/stores/{store['id']}").status_code == 200
        assert grace.client.get("/api/me/invitations").json() == []
        again = grace.client.post(f"/api/me/invitations/{invitation['id']}/accept")
        assert again.status_code == 404


def test_inviting_does_not_reveal_which_emails_have_accounts(live: Any) -> None:
    with api_user(live) as owner, api_user(live) as existing:
        store = create_store(owner)
        newcomer_email = unique_email("not-yet-registered")
        known = invite(owner, store["id"], existing.email, "seller")
        unknown = invite(owner, store["id"], newcomer_email, "seller")
        assert known.status_code == unknown.status_code == 201
        assert set(known.json()) == set(unknown.json())
        # Whoever registers the address later finds the invitation waiting.
        with api_user(live, email=newcomer_email) as newcomer:
            [waiting] = newcomer.client.get("/api/me/invitations").json()
            assert waiting["id"] == unknown.json()["id"]
            accepted = newcomer.client.post(f"/api/me/invitations/{waiting['id']}/accept")
            assert accepted.status_code == 201
            assert is_member(live, store["id"], newcomer.id)


def test_registration_answers_a_taken_email_without_the_account(live: Any) -> None:
    with api_user(live) as existing, anonymous(live) as client:
        response = client.post(
            "/api/auth/register",
            json={"email": existing.email, "password": PASSWORD, "name": "Impostor"},
        )
    assert response.status_code == 409
    assert existing.name not in response.text and str(existing.id) not in response.text


def test_only_the_invitee_may_accept_or_decline(live: Any) -> None:
    with store_team(live) as team, api_user(live) as invitee, api_user(live) as stranger:
        invitation = invite(team.owner, team.id, invitee.email, "admin").json()
        for actor in (stranger, team.seller, team.owner):
            for action in ("accept", "decline"):
                path = f"/api/me/invitations/{invitation['id']}/{action}"
                response = actor.client.post(path)
                assert response.status_code == 404, (action, response.text)
        assert stranger.client.get("/api/me/invitations").json() == []
        with anonymous(live) as client:
            assert client.post(f"/api/me/invitations/{invitation['id']}/accept").status_code == 401
        assert not is_member(live, team.id, stranger.id)
        assert live.scalar(
            "SELECT count(*) FROM store_invitation WHERE id = :i", i=invitation["id"]
        )


def test_declined_and_withdrawn_invitations_make_nobody_a_member(live: Any) -> None:
    with store_team(live) as team, api_user(live) as first, api_user(live) as second:
        declined = invite(team.owner, team.id, first.email, "seller").json()
        response = first.client.post(f"/api/me/invitations/{declined['id']}/decline")
        assert response.status_code == 204
        withdrawn = invite(team.admin, team.id, second.email, "seller").json()
        listed = team.admin.client.get(f"/api/stores/{team.id}/invitations").json()
        assert [i["id"] for i in listed] == [withdrawn["id"]]
        path = f"/api/stores/{team.id}/invitations/{withdrawn['id']}"
        assert team.admin.client.delete(path).status_code == 204
        response = second.client.post(f"/api/me/invitations/{withdrawn['id']}/accept")
        assert response.status_code == 404
        assert not is_member(live, team.id, first.id)
        assert not is_member(live, team.id, second.id)
        # Declining freed the address: it may be invited again.
        assert invite(team.owner, team.id, first.email, "seller").status_code == 201


def test_one_open_invitation_per_address_and_none_for_members(live: Any) -> None:
    with store_team(live) as team, api_user(live) as invitee:
        assert invite(team.owner, team.id, invitee.email, "seller").status_code == 201
        twice = invite(team.owner, team.id, invitee.email.upper(), "admin")
        assert twice.status_code == 409 and error_code(twice) == "already_invited"
        member = invite(team.owner, team.id, team.seller.email, "admin")
        assert member.status_code == 409 and error_code(member) == "member_exists"


def test_an_expired_invitation_is_not_offered_and_cannot_be_accepted(live: Any) -> None:
    with store_team(live) as team, api_user(live) as invitee:
        invitation = invite(team.owner, team.id, invitee.email, "seller").json()
        with live.db.begin() as conn:
            conn.execute(
                sa.update(StoreInvitation)
                .where(StoreInvitation.id == invitation["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert invitee.client.get("/api/me/invitations").json() == []
        response = invitee.client.post(f"/api/me/invitations/{invitation['id']}/accept")
        assert response.status_code == 409 and error_code(response) == "invitation_expired"
        assert not is_member(live, team.id, invitee.id)
        # An expired invitation does not block a new one.
        assert invite(team.owner, team.id, invitee.email, "seller").status_code == 201


def test_an_invitation_from_someone_who_lost_the_right_is_void(live: Any) -> None:
    with store_team(live) as team, api_user(live) as invitee:
        invitation = invite(team.admin, team.id, invitee.email, "admin").json()
        removed = team.owner.client.delete(f"/api/stores/{team.id}/members/{team.admin.id}")
        assert removed.status_code == 204
        response = invitee.client.post(f"/api/me/invitations/{invitation['id']}/accept")
        assert response.status_code == 409 and error_code(response) == "invitation_void"
        assert not is_member(live, team.id, invitee.id)


def test_only_owners_invite_or_withdraw_owners(live: Any) -> None:
    with store_team(live) as team, api_user(live) as invitee:
        by_admin = invite(team.admin, team.id, invitee.email, "owner")
        assert by_admin.status_code == 403
        by_owner = invite(team.owner, team.id, invitee.email, "owner").json()
        path = f"/api/stores/{team.id}/invitations/{by_owner['id']}"
        assert team.admin.client.delete(path).status_code == 403
        by_seller = invite(team.seller, team.id, unique_email(), "seller")
        assert by_seller.status_code == 403


def test_the_dashboard_offers_invitations_to_join_or_decline(live: Any) -> None:
    from tests.helpers import browser_login

    with store_team(live, name="Page Store") as team, api_user(live) as invitee:
        joined = invite(team.owner, team.id, invitee.email, "seller").json()
        with browser_login(live, invitee.email) as browser:
            page = browser.client.get("/dashboard")
            assert 'id="invitations"' in page.text and "Page Store" in page.text
            no_csrf = browser.client.post(f"/dashboard/invitations/{joined['id']}/accept")
            assert no_csrf.status_code == 403 and not is_member(live, team.id, invitee.id)
            done = browser.client.post(
                f"/dashboard/invitations/{joined['id']}/accept", data={"csrf_token": browser.csrf}
            )
            assert done.status_code == 303 and is_member(live, team.id, invitee.id)
            again = browser.client.post(
                f"/dashboard/invitations/{joined['id']}/accept", data={"csrf_token": browser.csrf}
            )
            assert again.status_code == 404 and "text/html" in again.headers["content-type"]
