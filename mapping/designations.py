"""Designation lines: which Virtuous Projects a gift's money goes to, and how much to each.

A gift designates either its fund (one line with the full amount) or, when the tenant syncs
fund allocations and the record has some, one line per allocation, with allocations to the
same Project merged. A Project is named by its id (the fund's ``virtuous_id``); where only a
``code`` is known, the Transaction path may name it by ``projectCode`` (seed 003: Virtuous's
matching resolves projectId, projectCode or externalAccountingCode), while the direct Gift and
RecurringGift APIs need the id.

Invariant: the lines of a gift sum exactly to the amount sent (its amount, or 0 when the gift
is being zeroed), so Virtuous's designation balance check always passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from mapping.errors import MappingError
from mapping.events import Allocation, Fund, Transaction
from mapping.money import dollars
from mapping.tenant import TenantSettings


class DesignationLine(NamedTuple):
    """One Project's share of a gift, in cents. Exactly one of the two references is set."""

    project_id: int | None
    project_code: str | None
    cents: int


def _project(fund: Fund, path: str, allow_code: bool) -> tuple[int | None, str | None]:
    if fund.virtuous_id is not None:
        return fund.virtuous_id, None
    if allow_code and fund.code is not None:
        return None, fund.code
    wanted = "Project id or code" if allow_code else "Project id"
    raise MappingError(
        f"{path}.virtuous_id",
        f"fund {fund.id!r} ({fund.name!r}) has no Virtuous {wanted}; push the fund first",
    )


def designation_lines(
    fund: Fund,
    allocations: Sequence[Allocation],
    amount: int,
    *,
    use_allocations: bool,
    allow_code: bool,
    prefix: str = "record",
) -> list[DesignationLine]:
    """Lines for ``amount`` cents from a fund or its allocations (see the module docstring).

    ``allocations`` must already sum to ``amount`` (the event contract guarantees it).
    Raises MappingError naming the first fund with no usable Project reference.
    """
    if not (use_allocations and allocations):
        project_id, code = _project(fund, f"{prefix}.fund", allow_code)
        return [DesignationLine(project_id, code, amount)]
    # A 0-cent allocation is noise on a gift with money in it (and needs no Project); a
    # record of 0 keeps all its allocations so a zeroed gift still names its Projects.
    indexed = [(i, a) for i, a in enumerate(allocations) if a.amount > 0] or list(
        enumerate(allocations)
    )
    merged: dict[tuple[int | None, str | None], int] = {}
    for index, allocation in indexed:
        key = _project(allocation.fund, f"{prefix}.allocations.{index}.fund", allow_code)
        merged[key] = merged.get(key, 0) + allocation.amount
    return [DesignationLine(pid, code, share) for (pid, code), share in merged.items()]


def gift_designation_lines(
    tx: Transaction,
    tenant: TenantSettings,
    *,
    zero_amount: bool = False,
    allow_code: bool = True,
) -> list[DesignationLine]:
    """The lines of a transaction; with ``zero_amount`` the same Projects at 0 cents each."""
    lines = designation_lines(
        tx.fund,
        tx.allocations,
        tx.amount,
        use_allocations=tenant.fund_allocations,
        allow_code=allow_code,
    )
    if zero_amount:
        return [line._replace(cents=0) for line in lines]
    return lines


def _reference(line: DesignationLine, id_key: str) -> dict[str, Any]:
    if line.project_id is not None:
        return {id_key: line.project_id}
    return {"projectCode": line.project_code}


def batch_designations(lines: Sequence[DesignationLine]) -> list[dict[str, Any]]:
    """The Gift Transaction shape: ``[{"id": projectId, "amountDesignated": "x.yy"}]``.

    A line known only by code goes as ``{"projectCode": code, "amountDesignated": ...}``.
    """
    return [{**_reference(line, "id"), "amountDesignated": dollars(line.cents)} for line in lines]


def realtime_designations(lines: Sequence[DesignationLine]) -> list[dict[str, Any]]:
    """The direct Gift shape: ``[{"projectId": projectId, "amount": "x.yy"}]``."""
    return [{**_reference(line, "projectId"), "amount": dollars(line.cents)} for line in lines]


def recurring_shape(lines: Sequence[DesignationLine]) -> list[dict[str, Any]]:
    """The RecurringGift shape: ``[{"projectId": projectId, "amountDesignated": "x.yy"}]``."""
    return [
        {**_reference(line, "projectId"), "amountDesignated": dollars(line.cents)} for line in lines
    ]


def lines_total(lines: Sequence[DesignationLine]) -> int:
    """The cents the lines add up to (what a balance check compares with the amount)."""
    return sum(line.cents for line in lines)
