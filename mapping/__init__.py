"""giftsync's pure mapping layer: every rule of the seeds, as functions over value objects.

No I/O, no clock, no Redis, HTTP or queue imports: inputs are arguments, outputs are plain
dicts ready to serialise. One module per concept:

============================  ==================================================================
events, records, fields       the change-event contract: models, validation, JSON Schema
tenant                        one tenant's settings
decision                      whether a transaction is sent (seed 002)
money, dates                  exact cents <-> dollars; gift dates in the tenant's timezone
designations                  Project lines that always sum to the amount
batch_entry                   one ``/api/v2/Gift/Transactions`` entry, embedded contact data
contacts                      ``POST /api/Contact``: the donor as a nested Contact
realtime                      ``POST /api/Gift`` and the GET+PUT update with the designation diff
recurring                     RecurringGift create/update, fee distribution (seed 004)
pull                          Virtuous Gifts and RecurringGifts back to WeGive records
preview                       what ``giftsync preview`` prints for one event
errors                        MappingError (EventValidationError lives in events)
============================  ==================================================================
"""

from mapping.batch_entry import batch_entry, contact_payload, gift_contact, gift_type
from mapping.contacts import contact_create_payload
from mapping.dates import gift_date, pulled_created_at
from mapping.decision import SendDecision, decide
from mapping.designations import DesignationLine, gift_designation_lines
from mapping.errors import MappingError
from mapping.events import (
    Address,
    Allocation,
    Campaign,
    ChangeEvent,
    EventValidationError,
    FieldError,
    Fund,
    Owner,
    ScheduledDonation,
    ScheduledDonationRef,
    Transaction,
    change_event_json_schema,
    is_batch_id,
    parse_event,
    parse_event_json,
    real_gift_id,
)
from mapping.money import cents, dollars, split_proportionally
from mapping.preview import preview_event
from mapping.pull import (
    PullMatch,
    match_pulled_gift,
    pulled_scheduled_donation,
    pulled_transaction,
    resolve_owner,
)
from mapping.realtime import realtime_create, realtime_desired, realtime_update, zeroing_update
from mapping.recurring import (
    FREQUENCY_FROM_VIRTUOUS,
    FREQUENCY_TO_VIRTUOUS,
    charge_amount,
    missing_dependencies,
    recurring_create,
    recurring_decision,
    recurring_designations,
    recurring_update,
)
from mapping.tenant import SettingsError, TenantSettings, parse_tenant, parse_tenants

__all__ = [
    "FREQUENCY_FROM_VIRTUOUS",
    "FREQUENCY_TO_VIRTUOUS",
    "Address",
    "Allocation",
    "Campaign",
    "ChangeEvent",
    "DesignationLine",
    "EventValidationError",
    "FieldError",
    "Fund",
    "MappingError",
    "Owner",
    "PullMatch",
    "ScheduledDonation",
    "ScheduledDonationRef",
    "SendDecision",
    "SettingsError",
    "TenantSettings",
    "Transaction",
    "batch_entry",
    "cents",
    "change_event_json_schema",
    "charge_amount",
    "contact_create_payload",
    "contact_payload",
    "decide",
    "dollars",
    "gift_contact",
    "gift_date",
    "gift_designation_lines",
    "gift_type",
    "is_batch_id",
    "match_pulled_gift",
    "missing_dependencies",
    "parse_event",
    "parse_event_json",
    "parse_tenant",
    "parse_tenants",
    "preview_event",
    "pulled_created_at",
    "pulled_scheduled_donation",
    "pulled_transaction",
    "real_gift_id",
    "realtime_create",
    "realtime_desired",
    "realtime_update",
    "recurring_create",
    "recurring_decision",
    "recurring_designations",
    "recurring_update",
    "resolve_owner",
    "split_proportionally",
    "zeroing_update",
]
