"""Reads of stores: the nearest-store search, opening hours, the store chooser."""

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from o2o.errors import ApplicationError
from o2o.geo import Box, Point, bounding_box, distance_m, parse_point
from stores.models import OpeningHours, Staff, Store

_FIRST_SEARCH_RADIUS_M = 4_000.0
_MAX_GROWTH = 4.0
_WHOLE_EARTH_M = 20_100_000.0  # more than half the meridian: a box this wide holds every point
# A spherical distance is within ±0.6 % of the geodesic one (the ellipsoid's flattening is
# 0.34 %); a 1 % bound lets the cheap formula rule stores out without ever changing the result.
_SPHERE_RADIUS_M = 6_371_008.8
_SPHERE_ERROR = 0.01
# Plus an absolute metre, so that rounding at zero distance (two stores at one pole) never
# rules out a store the geodesic puts exactly at the limit.
_SPHERE_SLACK_M = 1.0


@dataclass(frozen=True)
class NearbyStore:
    store: Store
    distance_m: float | None  # None when the list was not asked from a point
    is_open: bool
    opening_hours: tuple["Interval", ...] = ()  # sorted by weekday and opening time


# A weekly opening interval as plain values: (weekday, opens_at, closes_at).
Interval = tuple[int, time, time]


def is_open_during(intervals: Iterable[Interval], when: datetime) -> bool:
    """Whether weekly `intervals` are open at `when`, in the chain's time zone.

    An interval that closes at or before it opens runs past midnight; one that opens
    and closes at the same minute is open all day. No intervals: never open.
    """
    local = timezone.localtime(when)
    weekday, now = local.weekday(), local.time()
    yesterday = (weekday - 1) % 7
    for day, opens, closes in intervals:
        if day == weekday:
            if opens == closes:
                return True
            if closes < opens and now >= opens:
                return True
            if opens < closes and opens <= now < closes:
                return True
        elif day == yesterday and closes < opens and now < closes:
            return True
    return False


def is_open_at(store: Store, when: datetime) -> bool:
    """Whether the store is open at `when` by its weekly hours (see `is_open_during`)."""
    return is_open_during(((h.weekday, h.opens_at, h.closes_at) for h in store.opening_hours.all()), when)


def _intervals_of(store_ids: Iterable[int]) -> dict[int, list[Interval]]:
    """Opening intervals of many stores in one light query (no model instances)."""
    intervals: dict[int, list[Interval]] = {}
    rows = (
        OpeningHours.objects.filter(store_id__in=list(store_ids))
        .order_by()
        .values_list("store_id", "weekday", "opens_at", "closes_at")
    )
    for store_id, day, opens, closes in rows:
        intervals.setdefault(store_id, []).append((day, opens, closes))
    for store_intervals in intervals.values():
        store_intervals.sort()
    return intervals


def opening_hours_on(store: Store, day: datetime) -> list[OpeningHours]:
    weekday = timezone.localtime(day).weekday()
    return [hours for hours in store.opening_hours.all() if hours.weekday == weekday]


def _validated_limit(limit: int) -> int:
    maximum = settings.O2O_NEAREST_STORES_MAX
    if not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ApplicationError(
            _("limit must be between 1 and %(max)s.") % {"max": maximum},
            code="invalid_limit",
            details={"limit": [_("Out of range.")]},
        )
    return limit


def _box_filter(box: Box) -> Q:
    # Round outward to the column's six decimals so a store on the edge is never lost.
    def down(x: float) -> Decimal:
        return Decimal(repr(x)).quantize(Decimal("0.000001"), rounding=ROUND_FLOOR)

    def up(x: float) -> Decimal:
        return Decimal(repr(x)).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)

    q = Q(latitude__gte=down(box.min_lat), latitude__lte=up(box.max_lat))
    if box.covers_all_longitudes:
        return q
    if box.crosses_antimeridian:
        return q & (Q(longitude__gte=down(box.min_lng)) | Q(longitude__lte=up(box.max_lng)))
    return q & Q(longitude__gte=down(box.min_lng), longitude__lte=up(box.max_lng))


def _sphere_distance_m(center: Point, lat: float, lng: float) -> float:
    lat1, lat2 = math.radians(center.lat), math.radians(lat)
    d_lat, d_lng = lat2 - lat1, math.radians(lng - center.lng)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(d_lng / 2) ** 2
    return 2 * _SPHERE_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _lower_bound(sphere_distance_m: float) -> float:
    """The least the geodesic distance can be, given the spherical one."""
    return sphere_distance_m * (1 - _SPHERE_ERROR) - _SPHERE_SLACK_M


# A candidate as the box query returns it: (pk, latitude, longitude, delivery radius in km).
_Candidate = tuple[int, Decimal, Decimal, Decimal]


def _rank(
    center: Point,
    candidates: list[_Candidate],
    *,
    radius_m: float,
    limit: int,
    delivers_here: bool,
    open_at: datetime | None,
) -> list[tuple[float, int]]:
    """Exact geodesic ranking, as (distance, pk), of the candidates within reach.

    Geodesic distances are slow to compute, so candidates whose spherical lower
    bound already puts them out of reach, or behind the first `limit` exact
    distances, are skipped: they could not be in the answer.
    """
    rough = []
    for pk, lat, lng, radius_km in candidates:
        lat_f, lng_f = float(lat), float(lng)
        reach = min(radius_m, float(radius_km) * 1000.0) if delivers_here else radius_m
        d = _sphere_distance_m(center, lat_f, lng_f)
        if _lower_bound(d) <= reach:
            rough.append((d, pk, lat_f, lng_f, reach))
    rough.sort(key=lambda item: (item[0], item[1]))
    hours = _intervals_of(item[1] for item in rough) if open_at is not None else {}

    ranked: list[tuple[float, int]] = []
    best: list[float] = []  # max-heap (negated) of the best `limit` exact distances so far
    for d, pk, lat, lng, reach in rough:
        if len(best) == limit and _lower_bound(d) > -best[0]:
            break  # every later candidate is at least this far: none can enter the answer
        exact = distance_m(center, Point(lat, lng))
        if exact > reach:
            continue
        if open_at is not None and not is_open_during(hours.get(pk, ()), open_at):
            continue
        ranked.append((exact, pk))
        if len(best) < limit:
            heapq.heappush(best, -exact)
        elif exact < -best[0]:
            heapq.heapreplace(best, -exact)
    ranked.sort()
    return ranked[:limit]


def nearest_stores(
    lat: float | str,
    lng: float | str,
    *,
    limit: int = 10,
    within_m: float | None = None,
    open_now: bool = False,
    offers_pickup: bool = False,
    delivers_here: bool = False,
    at: datetime | None = None,
    queryset: QuerySet[Store] | None = None,
) -> list[NearbyStore]:
    """Active stores ordered by geodesic distance from a GCJ-02 point, nearest first.

    Filters: `within_m` (a search radius), `open_now` (by weekly hours at `at`,
    default now), `offers_pickup`, and `delivers_here` (the point lies inside the
    store's own delivery radius). Ties are broken by store id, so the order is
    stable. Candidates come from an indexed bounding-box query that widens until
    it holds `limit` stores or the whole earth; only their coordinates are read,
    and only the winners are loaded as stores, with their open state.
    """
    center = parse_point(lat, lng)
    limit = _validated_limit(limit)
    if within_m is not None and (not math.isfinite(within_m) or within_m < 0):
        raise ApplicationError(_("The search radius must be a positive number of metres."), code="invalid_radius")
    when = at or timezone.now()

    stores = (queryset if queryset is not None else Store.objects.all()).filter(is_active=True).order_by()
    if offers_pickup:
        stores = stores.filter(offers_pickup=True)
    if delivers_here:
        stores = stores.filter(delivers=True, delivery_radius_km__gt=0)
        # The chain's widest radius bounds the search box. It is read from the plain store table:
        # asked of the caller's queryset (stock EXISTS per line, say) it would filter every store
        # of the chain, where the box needs only those near the point.
        widest = Store.objects.filter(is_active=True, delivers=True, delivery_radius_km__gt=0).aggregate(
            widest=Max("delivery_radius_km")
        )["widest"]
        if widest is None:
            return []
        within_m = min(within_m if within_m is not None else math.inf, float(widest) * 1000.0)
    columns = stores.values_list("pk", "latitude", "longitude", "delivery_radius_km")

    radius = within_m if within_m is not None else _FIRST_SEARCH_RADIUS_M
    while True:
        box = bounding_box(center, min(radius, _WHOLE_EARTH_M))
        ranked = _rank(
            center,
            list(columns.filter(_box_filter(box))),
            radius_m=radius,
            limit=limit,
            delivers_here=delivers_here,
            open_at=when if open_now else None,
        )
        if within_m is not None or len(ranked) >= limit or radius >= _WHOLE_EARTH_M:
            break
        radius *= _growth(found=len(ranked), wanted=limit)

    if not ranked:
        return []
    ids = [pk for _d, pk in ranked]
    winners = Store.objects.in_bulk(ids)
    hours = _intervals_of(ids)
    return [_nearby(winners[pk], d, hours.get(pk, []), when) for d, pk in ranked]


def _nearby(store: Store, distance: float | None, intervals: list[Interval], when: datetime) -> NearbyStore:
    return NearbyStore(
        store=store, distance_m=distance, is_open=is_open_during(intervals, when), opening_hours=tuple(intervals)
    )


def _growth(*, found: int, wanted: int) -> float:
    """How much to widen the search box: by the store density seen so far, 1.5× to 4×."""
    if found == 0:
        return _MAX_GROWTH
    # Stores grow with the area, i.e. the square of the radius; aim a little past `wanted`.
    return min(_MAX_GROWTH, max(1.5, 1.3 * math.sqrt(wanted / found)))


def active_stores(
    *, queryset: QuerySet[Store] | None = None, offers_pickup: bool = False, limit: int = 20, at: datetime | None = None
) -> list[NearbyStore]:
    """Active stores in code order with their open state, for lists asked without a point."""
    limit = _validated_limit(limit)
    stores = (queryset if queryset is not None else Store.objects.all()).filter(is_active=True)
    if offers_pickup:
        stores = stores.filter(offers_pickup=True)
    found = list(stores.order_by("code")[:limit])
    hours = _intervals_of(store.pk for store in found)
    when = at or timezone.now()
    return [_nearby(store, None, hours.get(store.pk, []), when) for store in found]


def active_stores_by_city() -> dict[str, list[Store]]:
    """The store chooser's data: active stores grouped by city, cities and stores in order."""
    grouped: dict[str, list[Store]] = {}
    for store in Store.objects.filter(is_active=True).order_by("city", "district", "name"):
        grouped.setdefault(store.city, []).append(store)
    return grouped


def staff_for_user(user) -> Staff | None:
    """The active staff record of a signed-in user, with its store, or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Staff.objects.select_related("store").filter(user=user, is_active=True, store__is_active=True).first()


def next_opening(store: Store, after: datetime) -> datetime | None:
    """When the store next opens after `after` (within a week), for "opens at 09:00" labels."""
    local = timezone.localtime(after)
    hours = list(store.opening_hours.all())
    for day_offset in range(8):
        day = (local + timedelta(days=day_offset)).date()
        starts = sorted(h.opens_at for h in hours if h.weekday == day.weekday())
        for opens in starts:
            moment = timezone.make_aware(datetime.combine(day, opens), timezone.get_current_timezone())
            if moment > local:
                return moment
    return None


def stores_visible_to(user) -> QuerySet[Store]:
    """The stores whose internal data (stock, orders) a signed-in user may see.

    HQ accounts (Django staff) see every store; a store's staff see their own store
    only; anyone else sees none.
    """
    if not getattr(user, "is_authenticated", False):
        return Store.objects.none()
    if user.is_staff or user.is_superuser:
        return Store.objects.all()
    staff = staff_for_user(user)
    if staff is None:
        return Store.objects.none()
    return Store.objects.filter(pk=staff.store_id)


def guide_entry_url(staff: Staff) -> str:
    """The absolute address a guide's personal QR code carries: whoever registers after opening it
    becomes the guide's customer (the page itself belongs to the members app, named here by URL)."""
    return settings.O2O_PUBLIC_URL + reverse("members:guide-entry", args=[staff.staff_code])
