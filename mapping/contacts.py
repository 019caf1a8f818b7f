"""A donor as a direct Contact create (``POST /api/Contact``): the nested shape.

Every public client that creates Contacts directly sends them nested: the individual's name
and its email and phone as ``contactMethods`` under ``contactIndividuals[]``, the address
under ``contactAddresses[]`` (docs/virtuous-contract.md, "Contacts"). A flat ``email`` or
``address1`` on this endpoint is not read, so it would create a Contact without them.

Address parts are spelled ``stateCode`` and ``countryCode``, as the two clients that document
the request (one with live tests) send them.
"""

from __future__ import annotations

from typing import Any

from mapping.batch_entry import CONTACT_TYPES, compact
from mapping.events import Owner
from mapping.tenant import TenantSettings

# The contact method types giftsync writes (Virtuous's own node lists them as examples).
EMAIL_TYPE = "Home Email"
PHONE_TYPE = "Home Phone"


def _methods(owner: Owner) -> list[dict[str, Any]]:
    methods = []
    for kind, value in ((EMAIL_TYPE, owner.email), (PHONE_TYPE, owner.phone)):
        if value:
            methods.append({"type": kind, "value": value, "isPrimary": True})
    return methods


def contact_create_payload(owner: Owner, tenant: TenantSettings) -> dict[str, Any]:
    """The body of ``POST /api/Contact`` for ``owner``.

    Keys: ``contactType``, ``name``, ``referenceSource``, ``referenceId``, ``isPrivate``
    (False), ``contactIndividuals`` (one primary individual with ``firstName``, ``lastName``
    and ``contactMethods`` [{type, value, isPrimary}]) and, when the donor has an address,
    ``contactAddresses`` (one primary address: ``address1``, ``city``, ``stateCode``,
    ``postal``, ``countryCode``). Missing values are omitted.
    """
    full_name = " ".join(part for part in (owner.first_name, owner.last_name) if part)
    name = owner.company_name if owner.type == "company" and owner.company_name else full_name
    individual = compact(
        {
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "isPrimary": True,
            "contactMethods": _methods(owner),
        }
    )
    address = owner.address
    addresses = []
    if address is not None:
        parts = compact(
            {
                "address1": address.line1,
                "city": address.city,
                "stateCode": address.state,
                "postal": address.postal,
                "countryCode": address.country,
            }
        )
        if parts:
            addresses.append({**parts, "isPrimary": True})
    payload = compact(
        {
            "contactType": CONTACT_TYPES[owner.type],
            "name": name or owner.email,
            "referenceSource": tenant.reference_source,
            "referenceId": str(owner.id),
            "isPrivate": False,
            "contactIndividuals": [individual],
        }
    )
    if addresses:
        payload["contactAddresses"] = addresses
    return payload
