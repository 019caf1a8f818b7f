"""``POST /api/Contact``: the nested shape every public client sends (docs/virtuous-contract.md)."""

from __future__ import annotations

from mapping.contacts import contact_create_payload
from mapping.events import Owner
from mapping.records import Address
from tests.unit.test_mapping_factories import owner_data, tenant

SETTINGS = tenant(reference_source="WeGive-Donor")


def test_a_person_arrives_with_email_phone_and_address() -> None:
    donor = Owner.model_validate(
        owner_data(
            virtuous_contact_id=None,
            id=703,
            first_name="Ben",
            last_name="Okafor",
            email="ben@example.net",
            phone="312-555-0142",
            address={
                "line1": "9 Elm Ave",
                "city": "Evanston",
                "state": "IL",
                "postal": "60201",
                "country": "US",
            },
        )
    )
    assert contact_create_payload(donor, SETTINGS) == {
        "contactType": "Household",
        "name": "Ben Okafor",
        "referenceSource": "WeGive-Donor",
        "referenceId": "703",
        "isPrivate": False,
        "contactIndividuals": [
            {
                "firstName": "Ben",
                "lastName": "Okafor",
                "isPrimary": True,
                "contactMethods": [
                    {"type": "Home Email", "value": "ben@example.net", "isPrimary": True},
                    {"type": "Home Phone", "value": "312-555-0142", "isPrimary": True},
                ],
            }
        ],
        "contactAddresses": [
            {
                "address1": "9 Elm Ave",
                "city": "Evanston",
                "stateCode": "IL",
                "postal": "60201",
                "countryCode": "US",
                "isPrimary": True,
            }
        ],
    }


def test_no_flat_contact_fields_are_sent() -> None:
    donor = Owner.model_validate(owner_data(email="a@example.org", phone="555-0100"))
    body = contact_create_payload(donor, SETTINGS)
    assert not {"email", "phone", "address1", "firstName", "lastName", "address"} & body.keys()


def test_a_company_is_an_organization_named_for_the_company() -> None:
    company = Owner(type="company", id=702, company_name="Acme Builders LLC")
    assert contact_create_payload(company, SETTINGS) == {
        "contactType": "Organization",
        "name": "Acme Builders LLC",
        "referenceSource": "WeGive-Donor",
        "referenceId": "702",
        "isPrivate": False,
        "contactIndividuals": [{"isPrimary": True, "contactMethods": []}],
    }


def test_a_donor_known_only_by_email_is_named_by_it_and_has_no_address() -> None:
    sparse = Owner(type="individual", id="u-1", email="x@example.org", address=Address(city=""))
    body = contact_create_payload(sparse, SETTINGS)
    assert body["name"] == "x@example.org"
    assert "contactAddresses" not in body
    assert body["contactIndividuals"][0]["contactMethods"] == [
        {"type": "Home Email", "value": "x@example.org", "isPrimary": True}
    ]
