"""A store's weekly hours in its time zone, its pause, its delivery area, and the order
rules that follow from them (docs/api.md, "Stores: opening hours and delivery area")."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lokaly_core.domain import delivery
from lokaly_core.domain.errors import StoreClosed, TooManyOpenOrders, ValidationFailed
from lokaly_core.domain.geo import distance_m
from lokaly_core.domain.hours import InvalidHours, StoreHours, hours_as_json, parse_hours, zone
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.model.catalog import StoreInfo
from lokaly_core.domain.model.delivery import Candidate
from tests.domain.conftest import ADDRESS, CUSTOMER, MILK, STORE, place
from tests.domain.fakes import FakeUnitOfWork

AMS = ZoneInfo("Europe/Amsterdam")


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def store(hours: dict | None, tz: str = "Europe/Amsterdam", accepting: bool = True) -> StoreHours:
    return StoreHours(timezone=zone(tz), hours=parse_hours(hours), accepting_orders=accepting)


# -- validation --------------------------------------------------------------------------


def test_a_schedule_round_trips_with_every_weekday_and_intervals_by_start():
    hours = parse_hours(
        {"mon": [["18:00", "22:00"], ["08:00", "12:00"]], "sat": [["22:00", "02:00"]]}
    )

    assert hours_as_json(hours) == {
        "mon": [["08:00", "12:00"], ["18:00", "22:00"]],
        "tue": [], "wed": [], "thu": [], "fri": [],
        "sat": [["22:00", "02:00"]],
        "sun": [],
    }
    assert parse_hours(hours_as_json(hours)) == hours
    assert parse_hours(None) is None
    assert hours_as_json(None) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], 'An object of weekdays ("mon" ... "sun") to lists of intervals.'),
        ({"monday": []}, "Unknown weekday keys: monday; use mon ... sun."),
        ({"mon": "08:00-12:00"}, 'mon: a list of ["HH:MM", "HH:MM"] intervals.'),
        ({"mon": [["08:00"]]}, 'mon[0]: an interval is a pair ["HH:MM", "HH:MM"].'),
        ({"mon": [["08:00", "24:00"]]}, "mon[0]: times are HH:MM from 00:00 to 23:59."),
        ({"mon": [["8:00", "12:00"]]}, "mon[0]: times are HH:MM from 00:00 to 23:59."),
        ({"mon": [["08:00", 1200]]}, "mon[0]: times are HH:MM from 00:00 to 23:59."),
        ({"tue": [["09:00", "09:00"]]}, "tue[0]: the start and the end must differ."),
        (
            {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]},
            "The intervals mon 08:00-12:00 and mon 11:00-13:00 overlap.",
        ),
        (
            {"fri": [["22:00", "02:00"]], "sat": [["01:00", "09:00"]]},
            "The intervals fri 22:00-02:00 and sat 01:00-09:00 overlap.",
        ),
        (
            {"sun": [["20:00", "03:00"]], "mon": [["02:00", "09:00"]]},
            "The intervals sun 20:00-03:00 and mon 02:00-09:00 overlap.",
        ),
    ],
)
def test_invalid_schedules_are_refused_with_what_is_wrong(raw, message):
    with pytest.raises(InvalidHours) as refused:
        parse_hours(raw)

    assert refused.value.messages == [message]


def test_intervals_that_touch_do_not_overlap():
    hours = parse_hours({"sun": [["18:00", "00:00"]], "mon": [["00:00", "02:00"]]})

    assert hours is not None


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "../etc/passwd", "Europe/"])
def test_an_unknown_time_zone_is_refused(name):
    with pytest.raises(InvalidHours):
        zone(name)


# -- open or closed ----------------------------------------------------------------------


def test_no_schedule_is_always_open_and_a_pause_closes_it_with_no_known_opening():
    always = StoreHours()
    paused = StoreHours(accepting_orders=False)
    now = utc(2026, 12, 2, 3, 0)

    assert always.is_open(now) and always.next_opening_at(now) == now
    assert not paused.is_open(now)
    assert paused.next_opening_at(now) is None


def test_open_inside_an_interval_in_the_stores_time_zone_half_open():
    # Wednesday 2 December 2026; Amsterdam is UTC+1 in winter
    s = store({"wed": [["08:00", "20:00"]]})

    assert not s.is_open(utc(2026, 12, 2, 6, 59))  # 07:59 local
    assert s.is_open(utc(2026, 12, 2, 7, 0))  # 08:00 local
    assert s.is_open(utc(2026, 12, 2, 18, 59))  # 19:59 local
    assert not s.is_open(utc(2026, 12, 2, 19, 0))  # 20:00 local: closed


def test_an_interval_past_midnight_belongs_to_the_day_it_starts():
    s = store({"sat": [["22:00", "02:00"]]})

    assert s.is_open(utc(2026, 12, 5, 21, 30))  # Saturday 22:30
    assert s.is_open(utc(2026, 12, 6, 0, 59))  # Sunday 01:59
    assert not s.is_open(utc(2026, 12, 6, 1, 0))  # Sunday 02:00
    assert not s.is_open(utc(2026, 12, 6, 22, 30))  # Sunday 23:30: Sunday has no hours
    assert not s.is_open(utc(2026, 12, 5, 0, 30))  # Saturday 01:30: Friday had no night


def test_sundays_night_runs_into_monday_of_the_next_week():
    s = store({"sun": [["23:00", "03:00"]]})

    assert s.is_open(utc(2026, 12, 6, 22, 0))  # Sunday 23:00
    assert s.is_open(utc(2026, 12, 7, 1, 30))  # Monday 02:30
    assert not s.is_open(utc(2026, 12, 7, 2, 0))  # Monday 03:00
    assert s.next_opening_at(utc(2026, 12, 7, 2, 0)) == utc(2026, 12, 13, 22, 0)


def test_next_opening_is_the_next_intervals_start_in_utc():
    s = store({"mon": [["08:00", "12:00"]], "fri": [["09:00", "17:00"]]})

    # Monday 12:30 local: Friday 09:00 local is 08:00 UTC
    assert s.next_opening_at(utc(2026, 12, 7, 11, 30)) == utc(2026, 12, 11, 8, 0)
    # Friday 17:00 local: Monday 08:00 local
    assert s.next_opening_at(utc(2026, 12, 11, 16, 0)) == utc(2026, 12, 14, 7, 0)


def test_a_schedule_with_no_interval_never_opens():
    s = store({})

    assert not s.is_open(utc(2026, 12, 2, 12, 0))
    assert s.next_opening_at(utc(2026, 12, 2, 12, 0)) is None


def test_other_time_zones_count_their_own_wall_clock():
    s = store({"wed": [["08:00", "09:00"]]}, tz="America/New_York")  # UTC-5 in December

    assert s.is_open(utc(2026, 12, 2, 13, 30))
    assert not s.is_open(utc(2026, 12, 2, 8, 30))  # 08:30 in Amsterdam, 03:30 in New York


# -- DST ---------------------------------------------------------------------------------
# Amsterdam, Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
# Amsterdam, Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.


def test_spring_forward_an_interval_covering_the_skipped_hour_is_open_on_both_sides():
    s = store({"sun": [["01:00", "04:00"]]})

    assert s.is_open(utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert s.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST, the jump
    assert s.is_open(utc(2026, 3, 29, 1, 59))  # 03:59 CEST
    assert not s.is_open(utc(2026, 3, 29, 2, 0))  # 04:00 CEST: two hours of real time


def test_spring_forward_a_start_in_the_skipped_hour_opens_when_the_clocks_jump():
    s = store({"sun": [["02:30", "05:00"]]})

    assert not s.is_open(utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert s.next_opening_at(utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)


def test_spring_forward_an_interval_inside_the_skipped_hour_is_not_open_that_night():
    s = store({"sun": [["02:15", "02:45"]]})

    assert s.next_opening_at(utc(2026, 3, 29, 0, 0)) == utc(2026, 4, 5, 0, 15)  # 02:15 CEST


def test_fall_back_an_interval_covering_the_repeated_hour_is_open_in_both_passes():
    s = store({"sun": [["02:00", "02:30"]]})

    assert s.is_open(utc(2026, 10, 25, 0, 10))  # 02:10 CEST, first pass
    assert not s.is_open(utc(2026, 10, 25, 0, 45))  # 02:45 CEST
    assert s.is_open(utc(2026, 10, 25, 1, 10))  # 02:10 CET, second pass
    assert not s.is_open(utc(2026, 10, 25, 1, 30))  # 02:30 CET
    # closed between the passes: it opens again when the clocks go back
    assert s.next_opening_at(utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 1, 0)


def test_fall_back_a_night_interval_is_an_hour_longer_in_real_time():
    s = store({"sat": [["22:00", "06:00"]]})

    opened = s.next_opening_at(utc(2026, 10, 24, 12, 0))
    closes = utc(2026, 10, 25, 5, 0)  # 06:00 CET

    assert opened == utc(2026, 10, 24, 20, 0)  # 22:00 CEST
    assert s.is_open(closes - timedelta(minutes=1)) and not s.is_open(closes)
    assert closes - opened == timedelta(hours=9)


# -- distance ----------------------------------------------------------------------------


def test_great_circle_distance_in_metres():
    assert distance_m(52.37, 4.89, 52.37, 4.89) == 0
    # Amsterdam Centraal to Rotterdam Centraal, about 58.5 km as the crow flies
    assert 58_000 < distance_m(52.3791, 4.9003, 51.9244, 4.4690) < 59_000
    # a quarter of a meridian
    assert distance_m(0, 0, 90, 0) == pytest.approx(10_007_557, rel=1e-6)


def test_dispatch_measures_with_the_same_function():
    assert delivery.distance_km(52.0, 4.0, 52.1, 4.2) * 1000 == distance_m(52.0, 4.0, 52.1, 4.2)
    # east 0.03 degrees is 2.0 km at this latitude, north 0.015 degrees 1.7 km
    since = utc(2026, 12, 2, 9, 0)
    east = Candidate(uuid.uuid4(), 52.37, 4.92, since)
    north = Candidate(uuid.uuid4(), 52.385, 4.89, since)
    assert distance_m(52.37, 4.89, 52.37, 4.92) > distance_m(52.37, 4.89, 52.385, 4.89)
    assert delivery.rank_candidates(52.37, 4.89, [east, north]) == [north, east]


# -- the order rules ---------------------------------------------------------------------


def with_store(uow: FakeUnitOfWork, **changes) -> None:
    uow.catalog.stores[STORE] = dataclasses.replace(uow.catalog.stores[STORE], **changes)


def test_a_closed_store_refuses_the_order_with_its_next_opening(uow):
    # the fake clock says Friday 27 November 2026, 10:00 UTC (11:00 in Amsterdam)
    with_store(uow, hours=store({"fri": [["12:00", "20:00"]]}))

    with pytest.raises(StoreClosed) as refused:
        place(uow, (MILK, 1))

    assert refused.value.details == {"next_opening_at": "2026-11-27T11:00:00Z"}
    assert uow.orders.rows == {} and uow.published == [] and uow.commits == 0


def test_a_paused_store_refuses_the_order_with_no_next_opening(uow):
    with_store(uow, hours=StoreHours(accepting_orders=False))

    with pytest.raises(StoreClosed) as refused:
        place(uow, (MILK, 1))

    assert refused.value.details == {"next_opening_at": None}


def test_an_address_outside_the_delivery_radius_is_refused_with_the_distance(uow):
    with_store(uow, lat=52.3, lng=4.8, delivery_radius_m=5_000)  # ADDRESS is 6.8 km east

    with pytest.raises(ValidationFailed) as refused:
        place(uow, (MILK, 1))

    distance = round(distance_m(52.3, 4.8, ADDRESS.lat, ADDRESS.lng))
    assert refused.value.details == {
        "delivery_address": [
            f"The address is {distance} m from the store, which delivers within 5000 m."
        ],
        "distance_m": distance,
        "delivery_radius_m": 5_000,
    }
    assert uow.orders.rows == {}


def test_an_address_inside_the_delivery_radius_is_taken(uow):
    with_store(uow, lat=52.3, lng=4.8, delivery_radius_m=7_000)

    assert place(uow, (MILK, 1)).status is o.OrderStatus.PENDING


def test_the_open_orders_limit_counts_orders_neither_delivered_nor_cancelled(uow):
    def place_limited() -> o.Order:
        from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
        from tests.domain.fakes import FakeClock

        command = PlaceOrder(
            customer_id=CUSTOMER,
            store_id=STORE,
            items=[ItemRequest(MILK, 1)],
            delivery_address=ADDRESS,
        )
        return place_order(
            uow=uow, clock=FakeClock(), command=command, delivery_fee_cents=0, max_open_orders=2
        )

    first, _second = place_limited(), place_limited()
    with pytest.raises(TooManyOpenOrders) as refused:
        place_limited()
    assert refused.value.details == {"open_orders": 2, "max_open_orders": 2}

    uow.orders.rows[first.id].status = o.OrderStatus.CANCELLED
    assert place_limited().status is o.OrderStatus.PENDING
    assert len(uow.orders.rows) == 3


def test_a_v1_store_takes_orders_at_any_hour_anywhere(uow):
    assert uow.catalog.stores[STORE] == StoreInfo(id=STORE, is_active=True)

    far = dataclasses.replace(ADDRESS, lat=-33.9, lng=18.4)  # Cape Town
    assert place(uow, (MILK, 1), address=far).status is o.OrderStatus.PENDING
