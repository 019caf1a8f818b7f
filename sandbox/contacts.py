"""Contact records: built from a ``ContactInput``, compared with one, merged with one.

A Contact is stored as the JSON the API returns: ``contactReferences`` [{source, id}], one
``address``, and ``contactIndividuals`` whose ``contactMethods`` hold emails and phones. Only
``build_contact`` and ``merge_into`` change a record; ``index_fields`` feeds the matching index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.matching import (
    Address,
    ContactInput,
    Profile,
    norm_email,
    norm_phone,
    norm_postal,
)

NewId = Callable[[str], int]


def _method(new_id: NewId, kind: str, value: str) -> dict[str, Any]:
    return {"id": new_id("contactMethod"), "type": kind, "value": value, "isPrimary": True}


def build_contact(contact_id: int, inp: ContactInput, new_id: NewId, now: str) -> dict[str, Any]:
    """A new Contact record from incoming data."""
    individual_id = new_id("individual")
    methods = []
    if inp.email:
        methods.append(_method(new_id, "Home Email", inp.email))
    if inp.phone:
        methods.append(_method(new_id, "Home Phone", inp.phone))
    is_org = (inp.contact_type or "").lower() in ("organization", "company", "foundation")
    return {
        "id": contact_id,
        "contactType": "Organization" if is_org else (inp.contact_type or "Household"),
        "name": inp.display_name(),
        "isPrivate": False,
        "contactReferences": [{"source": s, "id": r} for s, r in inp.references],
        "address": None if inp.address.is_empty() else inp.address.to_json(),
        "contactIndividuals": [
            {
                "id": individual_id,
                "contactId": contact_id,
                "firstName": inp.first_name,
                "lastName": inp.last_name,
                "isPrimary": True,
                "contactMethods": methods,
            }
        ],
        "createDateTimeUtc": now,
        "modifiedDateTimeUtc": now,
    }


def _methods(contact: dict[str, Any], word: str) -> list[str]:
    return [
        m["value"]
        for ind in contact["contactIndividuals"]
        for m in ind["contactMethods"]
        if word in m["type"].lower() and m.get("value")
    ]


def emails(contact: dict[str, Any]) -> list[str]:
    return _methods(contact, "email")


def phones(contact: dict[str, Any]) -> list[str]:
    return _methods(contact, "phone")


def references(contact: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["source"], r["id"]) for r in contact["contactReferences"]]


def names(contact: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (i["firstName"], i["lastName"])
        for i in contact["contactIndividuals"]
        if i.get("firstName") and i.get("lastName")
    ]


def address(contact: dict[str, Any]) -> Address:
    raw = contact.get("address") or {}
    return Address(
        **{k: raw.get(k) for k in ("address1", "address2", "city", "state", "postal", "country")}
    )


def _same_address(a: Address, b: Address) -> bool:
    def low(x: str | None) -> str:
        return (x or "").strip().lower()

    return (
        low(a.address1) == low(b.address1)
        and low(a.city) == low(b.city)
        and low(a.state) == low(b.state)
        and norm_postal(a.postal) == norm_postal(b.postal)
    )


def profile(contact: dict[str, Any]) -> Profile:
    """The Contact's emails, phones, last names and address, normalised for comparing."""
    return Profile(
        emails=frozenset(e for e in map(norm_email, emails(contact)) if e),
        phones=frozenset(p for p in map(norm_phone, phones(contact)) if p),
        last_names=frozenset(
            (i.get("lastName") or "").lower() for i in contact["contactIndividuals"]
        ),
        address=address(contact),
    )


def differences(have: Profile, inp: ContactInput) -> list[str]:
    """What the incoming data would change on the Contact (the Import Tool's Update Needed)."""
    found = []
    if inp.email and norm_email(inp.email) not in have.emails:
        found.append(f"new email {inp.email}")
    if inp.phone and norm_phone(inp.phone) not in have.phones:
        found.append(f"new phone {inp.phone}")
    if not inp.address.is_empty() and not _same_address(inp.address, have.address):
        parts = (inp.address.address1, inp.address.city, inp.address.state, inp.address.postal)
        found.append("new address " + ", ".join(p for p in parts if p))
    if inp.last_name and inp.last_name.lower() not in have.last_names:
        found.append(f"different last name {inp.last_name}")
    return found


def merge_into(
    contact: dict[str, Any], inp: ContactInput, new_id: NewId, now: str, add_references: bool = True
) -> bool:
    """Merge incoming data into the record (new email/phone primary, address replaced)."""
    changed = bool(differences(profile(contact), inp))
    primary = contact["contactIndividuals"][0]
    for word, value, kind in (
        ("email", inp.email, "Home Email"),
        ("phone", inp.phone, "Home Phone"),
    ):
        have = emails(contact) if word == "email" else phones(contact)
        norm = norm_email if word == "email" else norm_phone
        if value and norm(value) not in {norm(v) for v in have}:
            for method in primary["contactMethods"]:
                if word in method["type"].lower():
                    method["isPrimary"] = False
            primary["contactMethods"].append(_method(new_id, kind, value))
    if not inp.address.is_empty() and not _same_address(inp.address, address(contact)):
        contact["address"] = inp.address.to_json()
    if inp.last_name and inp.last_name.lower() not in {
        (i.get("lastName") or "").lower() for i in contact["contactIndividuals"]
    }:
        primary["lastName"] = inp.last_name
        if inp.first_name:
            primary["firstName"] = inp.first_name
        if contact["contactType"] != "Organization":
            contact["name"] = " ".join(p for p in (primary["firstName"], inp.last_name) if p)
    if add_references:
        for src, rid in inp.references:
            if (src, rid) not in references(contact):
                contact["contactReferences"].append({"source": src, "id": rid})
                changed = True
    if changed:
        contact["modifiedDateTimeUtc"] = now
    return changed
