"""The public Virtuous clients' ordinary requests, written as data from reading their code.

Each row: the client (repository + file), method, path and body as that client sends them,
and the answer the contract (docs/virtuous-contract.md) gives. Placeholders stand for records
the replay makes first: ``"{contact}"`` (a Contact with reference API Testing/test-1 and email
ada@example.org), ``"{gift}"`` (a Gift of that Contact, WeGive/g-1, 25.00 to project 101)
and ``"{recurring}"`` (a monthly RecurringGift of that Contact). ``expect`` names fields of
the JSON answer and the values they must hold (dotted paths; ``...`` means present).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PublicRequest:
    name: str
    source: str
    method: str
    path: str
    body: Any = None
    status: int = 200
    expect: dict[str, Any] = field(default_factory=dict)


TS = "animalaidunlimited/virtuous-ts"
N8N = "VirtuousCRM/n8n-nodes-virtuous-crm"
HMAC = "VirtuousCRM/HMAC-Auth"
RB = "taylorbrooks/virtuous"
NUCLEUS = "impactupgrade/nucleus-engine"
INAT = "inaturalist/inaturalist"

REQUESTS = [
    # --- Gift Transactions -----------------------------------------------------------------
    PublicRequest(
        "ts createGiftTransaction (doc example)",
        f"{TS}: src/client/gift.ts",
        "POST",
        "/api/v2/Gift/Transaction",
        {
            "transactionSource": "Face to Face 012025",
            "transactionId": "12345",
            "frequency": "OneTime",
            "contact": {"email": "sarah@example.com", "firstname": "Sarah", "lastname": "Johnson"},
            "giftType": "Cash",
            "amount": 100.00,
            "giftDate": "2025-04-05",
            "currencyCode": "USD",
            "notes": "This is a note",
            "segment": "Face to Face 012025",
            "mediaOutlet": "Facebook",
        },
    ),
    PublicRequest(
        "hmac sample (Newtonsoft: PascalCase, nulls, US date, trailing slash)",
        f"{HMAC}: VirtuousHmacAuth/Program.cs, GiftTransaction.cs",
        "POST",
        "/api/v2/gift/transaction/",
        {
            "TransactionId": "5f0c6c1e-0000-4000-8000-000000000001",
            "Contact": {
                "ReferenceId": None,
                "Id": None,
                "Title": None,
                "Firstname": "Bob",
                "Lastname": "Loblaw",
                "Email": None,
                "Phone": None,
                "Address": None,
                "Tags": None,
            },
            "GiftDate": "7/1/2018",
            "GiftType": "Credit",
            "Amount": "50.00",
            "ReceiptDate": None,
            "Frequency": None,
            "Batch": None,
            "Notes": None,
            "Segment": None,
            "CashAccountingCode": None,
            "Tribute": None,
            "IsPrivate": False,
            "ContactIndividualId": None,
            "PassthroughContactId": None,
            "CheckNumber": None,
            "CreditCardType": "Visa",
            "Designations": None,
            "Premiums": None,
            "CustomFields": None,
        },
    ),
    PublicRequest(
        "n8n single Gift Transaction (fields mode: nested address, type, designation by code)",
        f"{N8N}: nodes/VirtuousCrm/resources/giftTransaction/create.ts",
        "POST",
        "/api/v2/Gift/Transaction",
        {
            "contact": {
                "firstName": "Grace",
                "lastName": "Hopper",
                "referenceId": "n8n-7",
                "type": "Household",
                "email": "grace@example.org",
                "address": {"address1": "2 Compiler Ct", "city": "Arlington", "state": "VA"},
            },
            "giftType": "EFT",
            "amount": "25.00",
            "transactionSource": "n8n",
            "transactionId": "n8n-gift-1",
            "giftDate": "2026-01-15",
            "designations": [{"code": "GEN", "amountDesignated": "25.00"}],
            "customFields": {"fieldName": "fieldValue"},
        },
    ),
    PublicRequest(
        "rb import_gift (designation by name, number amount)",
        f"{RB}: lib/virtuous/client/gift.rb",
        "POST",
        "/api/v2/Gift/Transaction",
        {
            "giftType": "Cash",
            "amount": 10.5,
            "currencyCode": "USD",
            "giftDate": "2026-01-15",
            "contact": {
                "contactType": "Organization",
                "name": "Org name",
                "firstName": "John",
                "lastName": "Doe",
                "email": "john_doe@email.com",
            },
            "designations": [{"name": "FOOD", "amountDesignated": "10.50"}],
        },
    ),
    PublicRequest(
        "rb import_gifts with shared fields (defaults fill the entries)",
        f"{RB}: lib/virtuous/client/gift.rb",
        "POST",
        "/api/v2/Gift/Transactions",
        {
            "transactionSource": "Source",
            "createImport": True,
            "importName": "January",
            "batch": "B-1",
            "batchTotal": 15.5,
            "defaultGiftDate": "2026-01-31",
            "defaultGiftType": "Check",
            "transactions": [
                {"amount": 10.5, "transactionId": "r1", "contact": {"referenceId": "test-1"}},
                {"amount": 5.0, "transactionId": "r2", "contact": {"email": "x@example.org"}},
            ],
        },
    ),
    # --- Gifts -------------------------------------------------------------------------------
    PublicRequest(
        "ts createGift",
        f"{TS}: src/types/gift/gift-create.ts",
        "POST",
        "/api/Gift",
        {
            "contactId": "{contact}",
            "giftType": "Electronic Funds Transfer",
            "giftDate": "2025-04-05",
            "amount": 40,
            "transactionSource": "ts",
            "transactionId": "ts-1",
            "giftDesignations": [{"projectId": 102, "amount": 40}],
            "customFields": [{"name": "Receipt Status", "value": "Sent"}],
        },
        expect={
            "giftType": "Electronic Funds Transfer",
            "amountFormatted": "$40.00",
            "giftDateFormatted": "4/5/2025",
        },
    ),
    PublicRequest(
        "rb/ts/nucleus getGift",
        f"{RB}: lib/virtuous/client/gift.rb get_gift; {TS}: src/client/gift.ts getGift",
        "GET",
        "/api/Gift/{gift}",
        expect={
            "amountFormatted": "$25.00",
            "giftDateFormatted": "11/20/2026",
            "giftTypeFormatted": "Credit",
            "giftUrl": ...,
            "giftDesignations.0.projectCode": "GEN",
        },
    ),
    PublicRequest(
        "find gift by transaction source and id",
        f"{RB}: gift.rb find_gift_by_transaction_id; {NUCLEUS}: VirtuousClient.java",
        "GET",
        "/api/Gift/WeGive/g-1",
        expect={"transactionId": "g-1"},
    ),
    PublicRequest(
        "gifts of a contact",
        f"{RB}: gift.rb get_contact_gifts; {TS}: gift.ts getGiftsByContact",
        "GET",
        "/api/Gift/ByContact/{contact}?skip=0&take=10",
        expect={"total": 1, "list.0.transactionId": "g-1"},
    ),
    PublicRequest(
        "ts updateGiftSafely (no contactId, designations Updated by projectId)",
        f"{TS}: src/utils/convert-gift-to-update-request.ts",
        "PUT",
        "/api/Gift/{gift}",
        {
            "giftType": "Credit",
            "giftDate": "2026-11-20T00:00:00",
            "amount": 30,
            "batch": None,
            "segmentId": None,
            "notes": "raised",
            "isPrivate": False,
            "isTaxDeductible": True,
            "giftDesignations": [{"projectId": 101, "amount": 30, "state": "Updated"}],
            "giftPremiums": [],
            "pledgePayments": [],
            "recurringGiftPayments": [],
            "customFields": [],
        },
        expect={"amount": 30.0, "contactId": "{contact}", "giftDesignations.0.projectId": 101},
    ),
    PublicRequest(
        "delete a gift",
        f"{RB}: gift.rb delete_gift; {TS}: gift.ts deleteGift; {NUCLEUS}: VirtuousClient.java",
        "DELETE",
        "/api/Gift/{gift}",
    ),
    PublicRequest(
        "nucleus reversing transaction",
        f"{NUCLEUS}: VirtuousClient.java reversingTransaction",
        "POST",
        "/api/Gift/ReversingTransaction",
        {"reversedGiftId": "{gift}", "giftDate": "2026-12-01", "notes": "refund"},
        expect={"amount": -25.0, "amountFormatted": "-$25.00", "reversedGiftId": "{gift}"},
    ),
    # --- RecurringGifts ----------------------------------------------------------------------
    PublicRequest(
        "ts createRecurringGift",
        f"{TS}: src/types/recurring-gift/recurring-gift-create.ts",
        "POST",
        "/api/RecurringGift",
        {
            "contactId": "{contact}",
            "startDate": "2025-04-01",
            "frequency": "Semiannually",
            "amount": 60,
            "anticipatedEndDate": None,
            "automatedPayments": False,
            "trackPayments": True,
            "isPrivate": False,
            "designations": [{"projectId": 101, "amountDesignated": 60}],
            "customFields": [{"name": "Channel", "value": "web"}],
        },
        expect={"status": ..., "customFields.0.name": "Channel", "frequency": "Semiannually"},
    ),
    PublicRequest(
        "nucleus createRecurringGift (upper-case frequency)",
        f"{NUCLEUS}: VirtuousCrmService.java asRecurringGift",
        "POST",
        "/api/RecurringGift",
        {
            "contactId": "{contact}",
            "startDate": "2026-01-01",
            "frequency": "ANNUALLY",
            "amount": "120.00",
            "nextExpectedPaymentDate": "2027-01-01",
        },
        expect={"frequency": "Annually", "customFields": []},
    ),
    PublicRequest(
        "getRecurringGift",
        f"{TS}: src/client/recurring-gift.ts; {RB}: recurring_gift.rb",
        "GET",
        "/api/RecurringGift/{recurring}",
        expect={"customFields": [], "cancelDateTimeUtc": None, "status": "Active"},
    ),
    PublicRequest(
        "ts updateRecurringGiftSafely (no contactId)",
        f"{TS}: src/utils/convert-recurring-gift-to-update-request.ts",
        "PUT",
        "/api/RecurringGift/{recurring}",
        {
            "startDate": "2026-12-01T00:00:00",
            "frequency": "Monthly",
            "amount": 15,
            "nextExpectedPaymentDate": "2026-12-01T00:00:00",
            "anticipatedEndDate": None,
            "thankYouDate": None,
            "segmentId": None,
            "automatedPayments": False,
            "trackPayments": False,
            "isPrivate": False,
            "designations": [{"projectId": 101, "amountDesignated": 15}],
            "customFields": [],
        },
        expect={"amount": 15.0, "contactId": "{contact}", "status": "Active"},
    ),
    PublicRequest(
        "nucleus cancelRecurringGift (body {})",
        f"{NUCLEUS}: VirtuousClient.java cancelRecurringGift",
        "PUT",
        "/api/RecurringGift/Cancel/{recurring}",
        {},
        expect={"status": "Cancelled", "cancelDateTimeUtc": ...},
    ),
    PublicRequest(
        "ts cancelRecurringGift (reason and category)",
        f"{TS}: src/types/recurring-gift/recurring-gift-cancel.ts",
        "PUT",
        "/api/RecurringGift/Cancel/{recurring}",
        {"cancelReason": "Moved away", "categoryId": 3},
        expect={"status": "Cancelled"},
    ),
    # --- Contacts ----------------------------------------------------------------------------
    PublicRequest(
        "ts createContact (live test's shared contact)",
        f"{TS}: tests/global-setup.ts",
        "POST",
        "/api/Contact",
        {
            "contactType": "Household",
            "name": "API Testing",
            "referenceSource": "API Testing",
            "referenceId": "test-99",
            "isPrivate": False,
            "isArchived": False,
            "contactAddresses": [
                {
                    "label": "Home",
                    "address1": "123 Main St",
                    "city": "Anytown",
                    "stateCode": "CA",
                    "postal": "12345",
                    "countryCode": "US",
                    "isPrimary": True,
                }
            ],
            "contactIndividuals": [
                {
                    "firstName": "API",
                    "lastName": "Testing",
                    "isPrimary": True,
                    "contactMethods": [
                        {"type": "Work Email", "value": "api@example.org", "isPrimary": True},
                        {"type": "Mobile Phone", "value": "+66811454063", "isPrimary": True},
                    ],
                }
            ],
        },
        expect={
            "address.state": "CA",
            "address.country": "US",
            "contactIndividuals.0.contactMethods.0.value": "api@example.org",
            "contactIndividuals.0.contactMethods.1.value": "+66811454063",
        },
    ),
    PublicRequest(
        "nucleus createContact (state/country, Home Email)",
        f"{NUCLEUS}: VirtuousCrmService.java asContact",
        "POST",
        "/api/Contact",
        {
            "name": "Kim Lee",
            "isPrivate": False,
            "contactType": "Household",
            "contactAddresses": [
                {
                    "country": "US",
                    "state": "IL",
                    "city": "Chicago",
                    "postal": "60601",
                    "address1": "1 Lake St",
                    "isPrimary": True,
                }
            ],
            "contactIndividuals": [
                {
                    "firstName": "Kim",
                    "lastName": "Lee",
                    "isPrimary": True,
                    "isSecondary": False,
                    "isDeceased": False,
                    "contactMethods": [
                        {
                            "type": "Home Email",
                            "value": "kim@example.org",
                            "isPrimary": True,
                            "isOptedIn": False,
                        }
                    ],
                }
            ],
        },
        expect={"address.postal": "60601", "address.state": "IL"},
    ),
    PublicRequest(
        "rb create_contact (organization with one individual)",
        f"{RB}: lib/virtuous/client/contact.rb",
        "POST",
        "/api/Contact",
        {
            "contactType": "Organization",
            "name": "Org name",
            "contactIndividuals": [{"firstName": "John", "lastName": "Doe"}],
        },
        expect={"contactType": "Organization", "name": "Org name"},
    ),
    PublicRequest(
        "n8n Contact Transaction (flat)",
        f"{N8N}: nodes/VirtuousCrm/resources/contact/create.ts",
        "POST",
        "/api/Contact/Transaction",
        {
            "firstName": "Mary",
            "lastName": "Jackson",
            "referenceSource": "n8n",
            "referenceId": "n8n-9",
            "emailType": "Home Email",
            "email": "mary@example.org",
            "address1": "5 Launch Rd",
            "city": "Hampton",
            "state": "VA",
            "postal": "23666",
        },
    ),
    PublicRequest(
        "get contact by id",
        f"{RB}: contact.rb get_contact; {TS}: contact.ts; {NUCLEUS}: VirtuousClient.java",
        "GET",
        "/api/Contact/{contact}",
        expect={"id": "{contact}", "contactReferences.0.id": "test-1"},
    ),
    PublicRequest(
        "get contact by reference",
        f"{N8N}: nodes/VirtuousCrm/resources/contact/getByReference.ts",
        "GET",
        "/api/Contact/API Testing/test-1",
        expect={"id": "{contact}"},
    ),
    PublicRequest(
        "find contact by email",
        f"{RB}: contact.rb find_contact_by_email; {NUCLEUS}: VirtuousClient.java",
        "GET",
        "/api/Contact/Find?email=ada@example.org",
        expect={"id": "{contact}"},
    ),
    PublicRequest(
        "find contact by an unknown email",
        f"{RB}: contact.rb find_contact_by_email",
        "GET",
        "/api/Contact/Find?email=nobody@example.org",
        status=404,
    ),
    # --- Queries -----------------------------------------------------------------------------
    PublicRequest(
        "inaturalist gift query (Gift Query, descending as a string)",
        f"{INAT}: tools/virtuous_donation_sync.rb",
        "POST",
        "/api/Gift/Query?take=1000",
        {
            "groups": [
                {
                    "conditions": [
                        {
                            "parameter": "Gift Date",
                            "operator": "GreaterThan",
                            "value": "2026-01-01",
                        },
                        {"parameter": "Gift Id", "operator": "GreaterThan", "value": 0},
                    ]
                }
            ],
            "sortBy": "Id",
            "descending": "false",
        },
        expect={"total": 1, "list.0.transactionId": "g-1"},
    ),
    PublicRequest(
        "ts gift query (sortBy GiftDate, MM/DD/YYYY value)",
        f"{TS}: src/utils/build-gift-query.ts, query-builder-helpers.ts",
        "POST",
        "/api/Gift/Query/FullGift?skip=0&take=100",
        {
            "groups": [
                {
                    "conditions": [
                        {"parameter": "Gift Date", "operator": "OnOrAfter", "value": "11/01/2026"}
                    ]
                }
            ],
            "sortBy": "GiftDate",
            "descending": True,
        },
        expect={"total": 1},
    ),
    PublicRequest(
        "a spaced operator is not QueryOptions' spelling",
        f"{RB}: spec/support/fixtures/gift_designation_query_options.json",
        "POST",
        "/api/Gift/Query/FullGift",
        {
            "groups": [
                {"conditions": [{"parameter": "Gift Id", "operator": "Greater Than", "value": 0}]}
            ]
        },
        status=400,
    ),
    PublicRequest(
        "ts recurring gift query",
        f"{TS}: src/utils/build-recurring-gift-query.ts",
        "POST",
        "/api/RecurringGift/Query?skip=0&take=100",
        {
            "groups": [
                {"conditions": [{"parameter": "Frequency", "operator": "Is", "value": "Monthly"}]}
            ],
            "sortBy": "Id",
            "descending": False,
        },
        expect={"total": 1},
    ),
    # --- Webhooks ----------------------------------------------------------------------------
    PublicRequest(
        "subscribe with no event flag: every event",
        "seed 001 (POST /api/Webhook); m-henke/Virtuous-Webhook: src/server.js (events handled)",
        "POST",
        "/api/Webhook",
        {"payloadUrl": "http://127.0.0.1:9/hook"},
        expect={
            "giftCreate": True,
            "giftUpdate": True,
            "giftDelete": True,
            "contactCreate": True,
            "contactUpdate": True,
        },
    ),
]
