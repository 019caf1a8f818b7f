"""Contact matching, the nightly batch's core (seed 003).

Signals in order of trust: an explicit contact id, the external reference
(referenceSource + referenceId), email, phone, then first + last name with a matching address
(postal code, or city and state). A signal that points at exactly one Contact is a match; one
that points at several is ambiguous and the next signal is tried. A match whose incoming email
belongs to a *different* Contact is a conflict (seed 000's "email conflict"): not confident.

Incoming contact data arrives in several shapes (the Gift Transaction's embedded ``contact``
with ``type``, ``firstname`` and a nested ``address``; flat Contact Transactions; the nested
``POST /api/Contact`` with ``contactIndividuals[].contactMethods`` and ``contactAddresses``);
``ContactInput.parse`` reads them all, case-insensitively, as the live API's model binding does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_DIGITS = re.compile(r"\D+")


def lower_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The same mapping with lower-cased keys: JSON binding in the live API ignores case."""
    return {k.lower(): v for k, v in obj.items()}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def norm_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def norm_phone(phone: str | None) -> str | None:
    """Digits only, last ten (so "+1 (555) 010-0001" and "555.010.0001" agree)."""
    if not phone:
        return None
    digits = _DIGITS.sub("", phone)
    return digits[-10:] if len(digits) >= 7 else None


def norm_postal(postal: str | None) -> str | None:
    return postal.strip().upper().replace(" ", "")[:5] if postal else None


@dataclass(frozen=True)
class Address:
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    postal: str | None = None
    country: str | None = None

    def is_empty(self) -> bool:
        return not any((self.address1, self.city, self.state, self.postal))

    def to_json(self) -> dict[str, Any]:
        return {
            "address1": self.address1,
            "address2": self.address2,
            "city": self.city,
            "state": self.state,
            "postal": self.postal,
            "country": self.country,
        }

    @staticmethod
    def parse(obj: Mapping[str, Any], lowered: bool = False) -> Address:
        """The primary (else first) of ``contactAddresses`` (``POST /api/Contact``), a nested
        ``address`` (the Gift Transaction's contact) or flat address1/city/state/postal fields
        (Contact Transactions). ``stateCode``/``countryCode`` are read as state and country."""
        low: Mapping[str, Any] = obj if lowered else lower_keys(obj)
        src: Mapping[str, Any]
        listed = [a for a in low.get("contactaddresses") or [] if isinstance(a, Mapping)]
        if listed:
            primary = [a for a in listed if lower_keys(a).get("isprimary") is True]
            src = lower_keys((primary or listed)[0])
        else:
            nested = low.get("address")
            src = lower_keys(nested) if isinstance(nested, Mapping) else low
        return Address(
            address1=_text(src.get("address1") or src.get("line1") or src.get("street")),
            address2=_text(src.get("address2") or src.get("line2")),
            city=_text(src.get("city")),
            state=_text(src.get("state") or src.get("statecode")),
            postal=_text(src.get("postal") or src.get("postalcode") or src.get("zip")),
            country=_text(src.get("country") or src.get("countrycode")),
        )


@dataclass(frozen=True)
class ContactInput:
    """What a request says about a donor, normalised."""

    contact_id: int | None = None
    references: tuple[tuple[str, str], ...] = ()
    contact_type: str | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Address = field(default_factory=Address)

    def has_identity(self) -> bool:
        """Enough to create a Contact from: a name of some kind, or an email."""
        return bool(self.name or self.last_name or self.email)

    def display_name(self) -> str:
        if self.name:
            return self.name
        return " ".join(p for p in (self.first_name, self.last_name) if p) or (self.email or "")

    @staticmethod
    def parse(obj: Mapping[str, Any], default_source: str | None = None) -> ContactInput:
        """Read any of the live API's contact shapes (``default_source``: the source of a bare
        referenceId)."""
        low = lower_keys(obj)
        refs: list[tuple[str, str]] = []
        ref_id = _text(low.get("referenceid"))
        ref_source = _text(low.get("referencesource")) or default_source
        if ref_id and ref_source:
            refs.append((ref_source, ref_id))
        for ref in low.get("contactreferences") or low.get("references") or []:
            if isinstance(ref, Mapping):
                r = lower_keys(ref)
                src, rid = (
                    _text(r.get("source") or r.get("referencesource")),
                    _text(r.get("id") or r.get("referenceid")),
                )
                if src and rid and (src, rid) not in refs:
                    refs.append((src, rid))
        first, last = _text(low.get("firstname")), _text(low.get("lastname"))
        email, phone = _text(low.get("email")), _text(low.get("phone"))
        individuals = low.get("contactindividuals")
        if isinstance(individuals, list) and individuals and isinstance(individuals[0], Mapping):
            ind = lower_keys(individuals[0])
            first = first or _text(ind.get("firstname"))
            last = last or _text(ind.get("lastname"))
            for method in ind.get("contactmethods") or []:
                if not isinstance(method, Mapping):
                    continue
                m = lower_keys(method)
                kind, value = str(m.get("type") or "").lower(), _text(m.get("value"))
                if "email" in kind and not email:
                    email = value
                elif "phone" in kind and not phone:
                    phone = value
        raw_id = low.get("id") if "id" in low else low.get("contactid")
        contact_id = (
            int(raw_id)
            if isinstance(raw_id, int) and not isinstance(raw_id, bool)
            else (int(raw_id) if isinstance(raw_id, str) and raw_id.isdigit() else None)
        )
        return ContactInput(
            contact_id=contact_id,
            references=tuple(refs),
            contact_type=_text(low.get("contacttype") or low.get("type")),
            name=_text(low.get("name") or low.get("companyname")),
            first_name=first,
            last_name=last,
            email=email,
            phone=phone,
            address=Address.parse(low, lowered=True),
        )


@dataclass(frozen=True)
class Profile:
    """A Contact's data normalised once for matching and comparing (kept in the index)."""

    emails: frozenset[str]
    phones: frozenset[str]
    last_names: frozenset[str]
    address: Address


@dataclass(frozen=True)
class Match:
    """The outcome of matching one input: a confident contact id, or a reason there is none."""

    contact_id: int | None
    signal: str | None
    reason: str
    # The best candidate even when not confident (a conflict): Contact Transactions merge into it.
    candidate_id: int | None = None


class ContactIndex:
    """Lookup tables over the organisation's Contacts, kept in step as Contacts change."""

    def __init__(self) -> None:
        self.by_ref: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.by_email: dict[str, set[int]] = defaultdict(set)
        self.by_phone: dict[str, set[int]] = defaultdict(set)
        self.by_name: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.profiles: dict[int, Profile] = {}
        self._keys: dict[int, list[tuple[dict[Any, set[int]], Any]]] = {}

    def add(
        self,
        contact_id: int,
        refs: Iterable[tuple[str, str]],
        names: Iterable[tuple[str, str]],
        profile: Profile,
    ) -> None:
        """(Re-)index one Contact from its current data."""
        self.remove(contact_id)
        keys: list[tuple[dict[Any, set[int]], Any]] = []
        for src, rid in refs:
            keys.append((self.by_ref, (src.lower(), rid)))
        keys.extend((self.by_email, e) for e in profile.emails)
        keys.extend((self.by_phone, p) for p in profile.phones)
        for first, last in names:
            keys.append((self.by_name, (first.lower(), last.lower())))
        for table, key in keys:
            table[key].add(contact_id)
        self._keys[contact_id] = keys
        self.profiles[contact_id] = profile

    def remove(self, contact_id: int) -> None:
        for table, key in self._keys.pop(contact_id, []):
            table[key].discard(contact_id)
            if not table[key]:
                del table[key]
        self.profiles.pop(contact_id, None)

    def ref_owner(self, source: str, ref_id: str) -> set[int]:
        return set(self.by_ref.get((source.lower(), ref_id), ()))

    def email_owners(self, email: str | None) -> set[int]:
        e = norm_email(email)
        return set(self.by_email.get(e, ())) if e else set()

    def _name_address(self, inp: ContactInput) -> set[int]:
        if not (inp.first_name and inp.last_name) or inp.address.is_empty():
            return set()
        found = set()
        for cid in self.by_name.get((inp.first_name.lower(), inp.last_name.lower()), ()):
            have = self.profiles[cid].address
            same_postal = bool(inp.address.postal) and norm_postal(
                inp.address.postal
            ) == norm_postal(have.postal)
            same_city = (
                bool(inp.address.city and inp.address.state and have.city and have.state)
                and (inp.address.city or "").lower() == (have.city or "").lower()
                and (inp.address.state or "").lower() == (have.state or "").lower()
            )
            if same_postal or same_city:
                found.add(cid)
        return found

    def match(self, inp: ContactInput | None, exists: Mapping[int, Any]) -> Match:
        """Run seed 003's signals in order; see the module docstring for the rules."""
        if inp is None:
            return Match(None, None, "no contact data and no contact id")
        if inp.contact_id is not None:
            if inp.contact_id in exists:
                return Match(inp.contact_id, "contact id", "contact id given", inp.contact_id)
            return Match(None, None, f"contact id {inp.contact_id} does not exist")
        # Lazily: most inputs match on the first signal.
        signals: list[tuple[str, Callable[[], set[int]]]] = [
            (
                "reference",
                lambda: (
                    set().union(*(self.ref_owner(s, r) for s, r in inp.references))
                    if inp.references
                    else set()
                ),
            ),
            ("email", lambda: self.email_owners(inp.email)),
            ("phone", lambda: set(self.by_phone.get(norm_phone(inp.phone) or "", ()))),
            ("name+address", lambda: self._name_address(inp)),
        ]
        ambiguous: list[str] = []
        for signal, find in signals:
            ids = find()
            if len(ids) == 1:
                (cid,) = ids
                others = self.email_owners(inp.email) - {cid}
                if signal != "email" and others and cid not in self.email_owners(inp.email):
                    owners = ", ".join(f"#{o}" for o in sorted(others))
                    return Match(
                        None,
                        signal,
                        f"matched #{cid} by {signal}, but email "
                        f"{inp.email} belongs to another contact ({owners})",
                        cid,
                    )
                return Match(cid, signal, f"matched by {signal}", cid)
            if len(ids) > 1:
                listed = ", ".join(f"#{c}" for c in sorted(ids))
                ambiguous.append(f"{signal} matches several contacts ({listed})")
        if ambiguous:
            return Match(None, None, "; ".join(ambiguous))
        tried = [
            s
            for s, present in (
                ("reference", inp.references),
                ("email", inp.email),
                ("phone", inp.phone),
                ("name+address", inp.last_name and not inp.address.is_empty()),
            )
            if present
        ]
        if not tried:
            return Match(None, None, "no reference, email, phone or name+address to match on")
        return Match(None, None, f"no existing contact matches by {', '.join(tried)}")
