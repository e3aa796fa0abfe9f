"""Coordinates: validation, WGS-84 → GCJ-02, geodesic distance and search boxes.

Stores are kept in GCJ-02 ("Mars coordinates"), the datum of WeChat's
`getLocation(type: 'gcj02')` and of Chinese maps (Amap, Tencent). Browsers report
WGS-84, so browser positions go through `wgs84_to_gcj02` first. The offset
between the two is a few hundred metres; distances between two GCJ-02 points are
computed as if they were WGS-84, which is exact to well under a metre per
kilometre inside a city.
"""

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.utils.translation import gettext as _
from geographiclib.geodesic import Geodesic

from o2o.errors import ApplicationError

# Krasovsky 1940, the ellipsoid GCJ-02's published transform is defined on.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323

# The smallest radius of curvature of the WGS-84 ellipsoid (meridional, at the
# equator). Converting a distance to an angle with it gives the widest angle, so
# a search box built with it never misses a point that is inside the distance.
_MIN_RADIUS_M = 6_335_439.0
_BOX_MARGIN = 1.001


class InvalidCoordinates(ApplicationError):
    code = "invalid_coordinates"


@dataclass(frozen=True)
class Point:
    lat: float
    lng: float


def parse_point(lat: object, lng: object, *, field: str = "near") -> Point:
    """A validated point from user input, or InvalidCoordinates naming the field."""
    try:
        lat_f = float(Decimal(str(lat).strip()))
        lng_f = float(Decimal(str(lng).strip()))
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidCoordinates(
            _("Coordinates must be numbers: latitude,longitude."),
            details={field: [_("Not a pair of numbers.")]},
        ) from None
    if not (math.isfinite(lat_f) and math.isfinite(lng_f)):
        raise InvalidCoordinates(_("Coordinates must be finite numbers."), details={field: [_("Not finite.")]})
    if not -90.0 <= lat_f <= 90.0:
        raise InvalidCoordinates(
            _("Latitude must be between -90 and 90."), details={field: [_("Latitude out of range.")]}
        )
    if not -180.0 <= lng_f <= 180.0:
        raise InvalidCoordinates(
            _("Longitude must be between -180 and 180."), details={field: [_("Longitude out of range.")]}
        )
    return Point(lat_f, lng_f)


def parse_point_pair(text: str, *, field: str = "near") -> Point:
    """Parse "lat,lng" as sent in a query string."""
    parts = str(text).split(",")
    if len(parts) != 2:
        raise InvalidCoordinates(
            _("Coordinates must be written as latitude,longitude."),
            details={field: [_("Expected two numbers separated by a comma.")]},
        )
    return parse_point(parts[0], parts[1], field=field)


_WGS84 = Geodesic.WGS84


def distance_m(a: Point, b: Point) -> float:
    """Geodesic distance in metres on the WGS-84 ellipsoid (Karney's algorithm).

    geographiclib is what geopy's `geodesic` runs; calling it directly skips
    building a new ellipsoid object per call, with the same result.
    """
    return _WGS84.Inverse(a.lat, a.lng, b.lat, b.lng, Geodesic.DISTANCE)["s12"]


@dataclass(frozen=True)
class Box:
    """A latitude/longitude box; when it crosses the antimeridian, min_lng > max_lng."""

    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.min_lng > self.max_lng

    @property
    def covers_all_longitudes(self) -> bool:
        return self.min_lng == -180.0 and self.max_lng == 180.0


def bounding_box(center: Point, radius_m: float) -> Box:
    """A box that contains every point within `radius_m` of `center`.

    Bounding coordinates on a sphere (J. P. Matuschek's method) with the smallest
    radius of curvature of the ellipsoid and a small margin, so the box is never
    too tight for geodesic distances. Near a pole it spans all longitudes.
    """
    angular = radius_m * _BOX_MARGIN / _MIN_RADIUS_M
    lat = math.radians(center.lat)
    min_lat, max_lat = lat - angular, lat + angular
    if min_lat <= -math.pi / 2 or max_lat >= math.pi / 2 or angular >= math.pi / 2:
        return Box(max(math.degrees(min_lat), -90.0), min(math.degrees(max_lat), 90.0), -180.0, 180.0)
    delta_lng = math.asin(min(1.0, math.sin(angular) / math.cos(lat)))
    min_lng = center.lng - math.degrees(delta_lng)
    max_lng = center.lng + math.degrees(delta_lng)
    if min_lng < -180.0:
        min_lng += 360.0
    if max_lng > 180.0:
        max_lng -= 360.0
    if delta_lng >= math.pi / 2 - 1e-12:
        min_lng, max_lng = -180.0, 180.0
    return Box(math.degrees(min_lat), math.degrees(max_lat), min_lng, max_lng)


def _out_of_china(lat: float, lng: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _transform_lng(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(point: Point) -> Point:
    """Convert a WGS-84 point (GPS, browser geolocation) to GCJ-02.

    Outside mainland China GCJ-02 equals WGS-84, so the point comes back unchanged.
    """
    if _out_of_china(point.lat, point.lng):
        return point
    d_lat = _transform_lat(point.lng - 105.0, point.lat - 35.0)
    d_lng = _transform_lng(point.lng - 105.0, point.lat - 35.0)
    rad_lat = point.lat / 180.0 * math.pi
    magic = 1 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A * (1 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    d_lng = (d_lng * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return Point(point.lat + d_lat, point.lng + d_lng)


def format_distance(metres: float) -> str:
    """ "850 m" under a kilometre, "1.2 km" above, in the reader's language."""
    if metres < 1000:
        return _("%(m)d m") % {"m": round(metres)}
    return _("%(km)s km") % {"km": f"{metres / 1000:.1f}"}


def amap_marker_url(point: Point, name: str) -> str:
    """A link that opens Amap (or its web page) on a GCJ-02 point, inside WeChat too."""
    query = urlencode(
        {"position": f"{point.lng:.6f},{point.lat:.6f}", "name": name, "coordinate": "gaode", "callnative": 1}
    )
    return f"https://uri.amap.com/marker?{query}"
