"""The Virtuous contract as data (docs/virtuous-contract.md): the endpoints and the body fields
each takes, with the public evidence for them.

A body spec maps a field name (compared case-insensitively, as the live API binds JSON) to
``None`` (a value), a nested spec (an object) or a one-item list holding a spec (a list of
objects); ``ANY`` takes an object with any keys (``customFields`` on the batch path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANY: dict[str, Any] = {"*": None}


def _names(text: str) -> dict[str, None]:
    """A spec of plain values from space-separated field names."""
    return dict.fromkeys(text.split())


Spec = Mapping[str, Any]

ADDRESS = dict.fromkeys(("address1", "address2", "city", "state", "postal", "country"))
# The Gift Transaction's contact: n8n giftTransaction/create.ts sample, HMAC-Auth
# GiftTransaction.cs (Contact, Address), virtuous-ts gift-transaction-create.ts (GiftContactInput).
# contactType: taylorbrooks gift.rb import_gift example. referenceSource: what giftsync adds so
# the reference pair is its own (docs/virtuous-contract.md, "Open").
GIFT_CONTACT: dict[str, Any] = {
    **_names(
        "referenceId id name type title firstName middleName lastName suffix birthMonth "
        "birthDay birthYear gender emailType email phoneType phone tags emailLists "
        "referenceSource contactType"
    ),
    "address": ADDRESS,
}
DESIGNATION_IN = dict.fromkeys(("id", "name", "code", "projectCode", "amountDesignated"))
# One Gift Transaction: the same three sources, plus seed 002's batch table.
GIFT_TRANSACTION: dict[str, Any] = {
    **_names(
        "transactionSource transactionId giftDate cancelDate giftType amount currencyCode "
        "exchangeRate frequency recurringGiftTransactionId recurringGiftTransactionUpdate "
        "pledgeFrequency pledgeTransactionId batch notes description segment segmentId "
        "segmentCode mediaOutlet receiptDate receiptSegment cashAccountingCode tribute isPrivate "
        "isTaxDeductible checkNumber creditCardType contactIndividualId submissionUrl "
        "passthroughContactId premiums"
    ),
    "contact": GIFT_CONTACT,
    "designations": [DESIGNATION_IN],
    "customFields": ANY,
}
# taylorbrooks gift.rb import_gifts (shared fields) and seed 002.
GIFT_TRANSACTIONS: dict[str, Any] = {
    **_names(
        "transactionSource createImport importName batch batchTotal defaultGiftDate defaultGiftType"
    ),
    "transactions": [GIFT_TRANSACTION],
}
# The Gift as GET returns it (taylorbrooks fixtures/gift.json): a full-replacement PUT sends
# it back with its changes (virtuous-ts convert-gift-to-update-request.ts).
GIFT_JSON_FIELDS = _names(
    "id transactionSource transactionId contactId contactName contactUrl giftType "
    "giftTypeFormatted giftDate giftDateFormatted amount amountFormatted currencyCode "
    "exchangeRate baseCurrencyCode batch createDateTimeUtc createdByUser modifiedDateTimeUtc "
    "modifiedByUser segmentId segment segmentCode segmentUrl mediaOutletId mediaOutlet grantId "
    "grant grantUrl notes description tribute tributeId tributeType acknowledgeeIndividualId "
    "isAcknowledgedGift acknowledgementDate acknowledgementNotes receiptDate "
    "receiptDateFormatted contactPassthroughId contactPassthroughUrl contactIndividualId "
    "cashAccountingCode giftAskId contactMembershipId giftPremiums pledgePayments giftUrl "
    "isPrivate isTaxDeductible reversedGiftId reversingGiftId pledgeTransactionId "
    "recurringGiftTransactionId"
)
GIFT_DESIGNATION = dict.fromkeys(
    ("id", "projectId", "projectCode", "project", "amount", "amountDesignated", "state")
)
GIFT: dict[str, Any] = {
    **GIFT_JSON_FIELDS,
    "giftDesignations": [GIFT_DESIGNATION],
    "recurringGiftPayments": [dict.fromkeys(("id", "amount", "state", "paymentId"))],
    "customFields": [dict.fromkeys(("name", "value", "displayName"))],
}
# taylorbrooks fixtures/recurring_gift.json, virtuous-ts recurring-gift-create.ts, seed 004.
RECURRING_GIFT: dict[str, Any] = {
    **_names(
        "id transactionSource transactionId contactId recurringGiftDate startDate amount "
        "frequency anticipatedEndDate thankYouDate cancelDateTimeUtc createDateTimeUtc "
        "createdByUser modifiedDateTimeUtc modifiedByUser segmentId segment segmentCode "
        "segmentUrl automatedPayments trackPayments isPrivate status nextExpectedPaymentDate "
        "description"
    ),
    "designations": [_names("id projectId project projectUrl projectCode amountDesignated")],
    "customFields": [dict.fromkeys(("name", "value", "displayName"))],
}
# taylorbrooks contact.rb (Contact data), virtuous-ts contact-create.ts, nucleus asContact.
CONTACT_CREATE: dict[str, Any] = {
    **_names(
        "contactType referenceSource referenceId name informalName description website "
        "maritalStatus originSegmentId isPrivate isArchived"
    ),
    "contactAddresses": [
        _names(
            "label address1 address2 city state stateCode postal country countryCode "
            "isPrimary latitude longitude"
        )
    ],
    "contactIndividuals": [
        {
            **_names(
                "firstName lastName prefix middleName suffix birthMonth birthDay birthYear "
                "gender isPrimary isSecondary isDeceased"
            ),
            "contactMethods": [dict.fromkeys(("type", "value", "isOptedIn", "isPrimary"))],
        }
    ],
    "customFields": ANY,
}
# n8n contact/create.ts (Contact Transaction sample), taylorbrooks contact.rb import_contact.
CONTACT_TRANSACTION: dict[str, Any] = {
    **_names(
        "referenceSource referenceId contactType name title firstName middleName lastName "
        "suffix birthMonth birthDay birthYear gender emailType email phoneType phone address1 "
        "address2 city state postal country tags originSegmentCode emailLists"
    ),
    "customFields": ANY,
}
CONDITION = dict.fromkeys(("parameter", "operator", "value", "values", "secondaryValue"))
# virtuous-ts shared/query.ts, nucleus Query, inaturalist virtuous_donation_sync.rb.
QUERY: dict[str, Any] = {
    "groups": [{"conditions": [CONDITION]}],
    "sortBy": None,
    "descending": None,
}
WEBHOOK = _names(
    "payloadUrl secret name active giftCreate giftUpdate giftDelete contactCreate contactUpdate"
)


@dataclass(frozen=True)
class Endpoint:
    """One route of the contract: method, path pattern, the body it takes, its evidence."""

    method: str
    path: str
    body: Spec | None
    evidence: str

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\{int\}", r"\\d+", re.sub(r"\{str\}", r"[^/]+", self.path))
        # Routes are case-insensitive and take a trailing slash (the contract's Conventions).
        found = re.fullmatch(pattern, path.rstrip("/"), flags=re.IGNORECASE)
        return method == self.method and found is not None


ENDPOINTS = [
    Endpoint("POST", "/api/v2/Gift/Transaction", GIFT_TRANSACTION, "seed 001; n8n; hmac"),
    Endpoint("POST", "/api/v2/Gift/Transactions", GIFT_TRANSACTIONS, "seed 002; rb gift.rb"),
    Endpoint("POST", "/api/Gift", GIFT, "seed 001; rb gift.rb; ts gift-create.ts"),
    Endpoint("POST", "/api/Gift/ReversingTransaction", ANY, "nucleus reversingTransaction"),
    Endpoint("POST", "/api/Gift/Query/FullGift", QUERY, "seed 002; nucleus; ts"),
    Endpoint("POST", "/api/Gift/Query", QUERY, "inat; nucleus"),
    Endpoint("GET", "/api/Gift/ByContact/{int}", None, "rb; ts; nucleus"),
    Endpoint("GET", "/api/Gift/{int}", None, "rb; ts; nucleus"),
    Endpoint("PUT", "/api/Gift/{int}", GIFT, "seed 002; ts gift.ts; rb gift.rb"),
    Endpoint("DELETE", "/api/Gift/{int}", None, "rb delete_gift; ts deleteGift; nucleus"),
    Endpoint("GET", "/api/Gift/{str}/{str}", None, "seed 001; rb; ts; nucleus"),
    Endpoint("POST", "/api/RecurringGift", RECURRING_GIFT, "seed 004; rb; ts; nucleus"),
    Endpoint("POST", "/api/RecurringGift/Query", QUERY, "seed 004; ts"),
    Endpoint("GET", "/api/RecurringGift/{int}", None, "rb; ts; nucleus"),
    Endpoint("PUT", "/api/RecurringGift/{int}", RECURRING_GIFT, "rb; ts; nucleus"),
    Endpoint(
        "PUT",
        "/api/RecurringGift/Cancel/{int}",
        dict.fromkeys(("cancelReason", "categoryId")),
        "nucleus cancelRecurringGift; ts recurring-gift-cancel.ts",
    ),
    Endpoint("POST", "/api/Contact/Transaction", CONTACT_TRANSACTION, "seed 003; n8n; rb"),
    Endpoint("POST", "/api/Contact", CONTACT_CREATE, "rb contact.rb; ts; nucleus"),
    Endpoint("GET", "/api/Contact/Find", None, "rb find_contact_by_email; nucleus"),
    Endpoint("GET", "/api/Contact/{int}", None, "seed 003; rb; ts; nucleus"),
    Endpoint("GET", "/api/Contact/{str}/{str}", None, "seed 003; n8n getByReference"),
    Endpoint("POST", "/api/Segment", dict.fromkeys(("name", "code", "description")), "nucleus"),
    Endpoint("GET", "/api/Segment/Code/{str}", None, "nucleus getSegmentByCode; hook"),
    Endpoint("GET", "/api/Segment/{int}", None, "ts segmentUrl '/Segment/5'"),
    Endpoint(
        "POST", "/api/Project", dict.fromkeys(("name", "projectCode", "description")), "seed 003"
    ),
    Endpoint("GET", "/api/Project/{int}", None, "rb gift_designations.json projectUrl"),
    Endpoint("POST", "/api/Webhook", WEBHOOK, "seed 001; hook server.js (event names)"),
    Endpoint("GET", "/api/Webhook", None, "sandbox choice: the subscriptions, for tests"),
    Endpoint("DELETE", "/api/Webhook/{int}", None, "sandbox choice: unsubscribe, for tests"),
]


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The first endpoint (most specific first, as listed) that a request hits."""
    return next((e for e in ENDPOINTS if e.matches(method, path)), None)


def unknown_fields(body: Any, spec: Spec, where: str = "") -> list[str]:
    """Every field of ``body`` (recursively) that ``spec`` does not list, as dotted paths."""
    if "*" in spec or not isinstance(body, Mapping):
        return []
    allowed = {k.lower(): v for k, v in spec.items()}
    found: list[str] = []
    for key, value in body.items():
        here = f"{where}{key}"
        if key.lower() not in allowed:
            found.append(here)
            continue
        sub = allowed[key.lower()]
        if isinstance(sub, list) and isinstance(value, list):
            for i, item in enumerate(value):
                found += unknown_fields(item, sub[0], f"{here}[{i}].")
        elif isinstance(sub, Mapping) and isinstance(value, Mapping):
            found += unknown_fields(value, sub, f"{here}.")
    return found


def violations(method: str, path: str, body: Any) -> list[str]:
    """What is wrong with one request against the contract (empty: it conforms)."""
    endpoint = endpoint_for(method, path.split("?")[0])
    if endpoint is None:
        return [f"{method} {path}: no such endpoint in the contract"]
    if endpoint.body is None:
        return [f"{method} {path}: takes no body"] if body not in (None, b"", {}) else []
    if not isinstance(body, Mapping):
        return [f"{method} {path}: body must be a JSON object"]
    return [f"{method} {path}: unknown field {f}" for f in unknown_fields(body, endpoint.body)]
