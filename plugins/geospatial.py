"""Geospatial functions (``register_functions``): CreatePoint, CreateLineString,
CreatePolygon, ST_DISTANCE, ST_WITHIN, ST_INTERSECTS, ST_OVERLAPS.

Values are GeoJSON records as Stream Analytics writes them (``{"type": "Point",
"coordinates": [longitude, latitude]}``); the ST_ functions also take WKT text
(``'POINT(10 20)'``), as the reference says they support "all WKT types". Predicates
(shapely/GEOS) work on longitude/latitude with every edge densified along its great circle
(a point every 10 km, pyproj), so a long edge bends as in Stream Analytics' geography type.
As documented, a polygon whose ring turns clockwise (the inside on the right, "left-hand
orientation", judged with longitudes unwrapped) is the globe minus that polygon. A line
or polygon whose edge crosses the antimeridian (an edge from 179 to -179 is 2 degrees long,
not 358) is split there into pieces within [-180, 180]. ST_DISTANCE is the geodesic distance on the WGS84 ellipsoid in metres (pyproj):
the reference's example, (-5, -5) to (0, 0), is 784028.74 m here as there. A polygon
given with its ring as the coordinates (the reference's ST_OVERLAPS example) is accepted
as well as GeoJSON's list of rings; a ring that is not closed is closed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from headwater.functions import CastError, ScalarFunction, cast, type_name
from headwater.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import shapely

__all__ = ["create_point", "create_linestring", "create_polygon", "st_distance", "st_within",
           "st_intersects", "st_overlaps", "FUNCTIONS"]

class _Lib:
    """shapely and pyproj, imported on first use (they take ~150 ms to import, and every
    plugin manager loads this module)."""

    def __getattr__(self, name: str) -> Any:
        import shapely
        import shapely.affinity
        import shapely.geometry
        import shapely.ops
        import shapely.wkt
        from pyproj import Geod

        self.shapely, self.geod = shapely, Geod(ellps="WGS84")
        self.globe = shapely.box(-180.0, -90.0, 180.0, 90.0)
        return getattr(self, name)


_LIB = _Lib()


def _coord(v: Any, what: str) -> float:
    try:
        f = cast(v, "float")
    except CastError:
        raise CastError(f"{what} must be a float, got '{type_name(v)}'") from None
    return f


def create_point(lat, lon):
    """CreatePoint(latitude, longitude): ``{"type": "Point", "coordinates": [lon, lat]}``."""
    if lat is None or lon is None:
        return None
    la, lo = _coord(lat, "CreatePoint: latitude"), _coord(lon, "CreatePoint: longitude")
    if not -90.0 <= la <= 90.0:
        raise ValueError(f"CreatePoint: latitude {la} is outside [-90, 90]")
    if not -180.0 <= lo <= 180.0:
        raise ValueError(f"CreatePoint: longitude {lo} is outside [-180, 180]")
    return {"type": "Point", "coordinates": [lo, la]}


def _point_coords(name: str, points: tuple) -> list[list[float]] | None:
    if any(p is None for p in points):
        return None
    out = []
    for i, p in enumerate(points, 1):
        g = _geometry(p, f"{name}: point {i}")
        if g.geom_type != "Point":
            raise ValueError(f"{name}: argument {i} must be a point, got a {g.geom_type}")
        out.append([g.x, g.y])
    return out


def create_linestring(*points):
    """CreateLineString(point, point, ...): at least 2 points, connected in order."""
    coords = _point_coords("CreateLineString", points)
    if coords is None:
        return None
    if len(coords) < 2:
        raise ValueError("CreateLineString: a LineString needs at least 2 points")
    return {"type": "LineString", "coordinates": coords}


def create_polygon(*points):
    """CreatePolygon(point, ..., first point): at least 3 distinct points, closed (the first
    and last points equal), no holes."""
    coords = _point_coords("CreatePolygon", points)
    if coords is None:
        return None
    if len(coords) < 4 or coords[0] != coords[-1]:
        raise ValueError("CreatePolygon: a polygon needs at least 3 points and the last point equal to the "
                         "first to close the loop")
    return {"type": "Polygon", "coordinates": [coords]}


@lru_cache(maxsize=4096)
def _from_text(text: str) -> shapely.Geometry:
    shapely = _LIB.shapely
    s = text.strip()
    g = _from_geojson(orjson.loads(s)) if s.startswith("{") else shapely.wkt.loads(s)
    g = _geodesic(g)  # longitudes unwrapped: an edge crossing the antimeridian goes past ±180
    left_hand = g.geom_type == "Polygon" and g.area > 0 and not g.exterior.is_ccw
    g = g if g.is_valid else shapely.make_valid(g)
    g = _split_at_antimeridian(g)
    # the reference: "a polygon with left-hand ring orientation will generate a geography that
    # encompasses the entire globe minus the polygon you declared"
    return _LIB.globe.difference(g) if left_hand else g


def _from_geojson(v: dict) -> shapely.Geometry:
    t = str(v.get("type", ""))
    coords = v.get("coordinates")
    if t.lower() == "polygon" and isinstance(coords, list) and coords and isinstance(coords[0], list) \
            and coords[0] and not isinstance(coords[0][0], list):
        coords = [coords]  # one ring given directly (the reference's examples)
    if t.lower() == "polygon" and isinstance(coords, list):
        coords = [r + [r[0]] if r and r[0] != r[-1] else r for r in coords]
    g = _LIB.shapely.geometry.shape({"type": {"point": "Point", "linestring": "LineString", "polygon": "Polygon",
                        "multipoint": "MultiPoint", "multilinestring": "MultiLineString",
                        "multipolygon": "MultiPolygon"}.get(t.lower(), t), "coordinates": coords})
    return g


#: Longest straight piece of a densified edge (metres): edges follow great circles to this.
SEGMENT_M = 10_000.0


def _densify_ring(coords: list, near: float | None = None) -> list:
    """``coords`` with points every SEGMENT_M along each great-circle edge, longitudes
    unwrapped (each within 180° of the one before, so an edge from 179 to -179 goes to 181);
    the first longitude is moved by 360° to within 180° of ``near`` when given."""
    out = [coords[0]]
    for (x0, y0), (x1, y1) in zip(coords, coords[1:]):
        n = int(_LIB.geod.inv(x0, y0, x1, y1)[2] // SEGMENT_M)
        if n:
            out.extend(_LIB.geod.npts(x0, y0, x1, y1, n))
        out.append((x1, y1))
    prev = out[0][0] if near is None else near
    unwrapped = []
    for x, y in out:
        x += 360.0 * round((prev - x) / 360.0)
        unwrapped.append((x, y))
        prev = x
    return unwrapped


def _split_at_antimeridian(g: shapely.Geometry) -> shapely.Geometry:
    """An unwrapped geometry (longitudes past ±180) cut at the antimeridian, each piece moved
    back into [-180, 180]: a line from 179 to 181 becomes two lines meeting at ±180."""
    shapely = _LIB.shapely
    if g.is_empty:
        return g
    west, _, east, _ = g.bounds
    if west >= -180.0 and east <= 180.0:
        return g
    pieces = []
    for k in range(int((west + 180.0) // 360.0), int((east + 180.0) // 360.0) + 1):
        part = g.intersection(shapely.box(k * 360.0 - 180.0, -90.0, k * 360.0 + 180.0, 90.0))
        if not part.is_empty:
            pieces.append(shapely.affinity.translate(part, xoff=-k * 360.0))
    return shapely.union_all(pieces)


def _geodesic(g: shapely.Geometry) -> shapely.Geometry:
    """``g`` with its edges following great circles (points inserted every 10 km), as the
    geography type Stream Analytics uses has them."""
    shapely, t = _LIB.shapely, g.geom_type
    if t == "LineString":
        return shapely.LineString(_densify_ring([c[:2] for c in g.coords]))
    if t == "Polygon":
        shell = _densify_ring([c[:2] for c in g.exterior.coords])
        near = shell[0][0]
        return shapely.Polygon(shell, [_densify_ring([c[:2] for c in r.coords], near) for r in g.interiors])
    if t.startswith("Multi") or t == "GeometryCollection":
        return type(g)([_geodesic(p) for p in g.geoms])
    return g


def _geometry(v: Any, what: str) -> shapely.Geometry:
    try:
        if isinstance(v, dict):  # by its JSON text, so a reference polygon is built once
            return _from_text(orjson.dumps(v).decode())
        if isinstance(v, str):
            return _from_text(v)
    except (ValueError, TypeError, KeyError, AttributeError, _LIB.shapely.errors.ShapelyError) as exc:
        raise ValueError(f"{what} is not a GeoJSON or WKT geometry: {exc}") from None
    raise ValueError(f"{what} must be a GeoJSON record or WKT text, got '{type_name(v)}'")


def _two(name: str, a, b) -> tuple[shapely.Geometry, shapely.Geometry] | None:
    if a is None or b is None:
        return None
    return _geometry(a, f"{name}: argument 1"), _geometry(b, f"{name}: argument 2")


def st_distance(a, b):
    """Geodesic distance in metres between two points (WGS84); between a point and a line,
    or two lines, from the nearest points; 0 with a polygon (as documented)."""
    gs = _two("ST_DISTANCE", a, b)
    if gs is None:
        return None
    ga, gb = gs
    if "Polygon" in ga.geom_type or "Polygon" in gb.geom_type:
        return 0.0
    if ga.geom_type == "Point" and gb.geom_type == "Point":
        return float(_LIB.geod.inv(ga.x, ga.y, gb.x, gb.y)[2])
    # nearest points in longitude/latitude, also with ``b`` moved a turn east or west, so two
    # pieces on either side of the antimeridian are found close, as they are on the globe
    best = float("inf")
    for shift in (0.0, 360.0, -360.0):
        pa, pb = _LIB.shapely.ops.nearest_points(ga, _LIB.shapely.affinity.translate(gb, xoff=shift))
        best = min(best, float(_LIB.geod.inv(pa.x, pa.y, pb.x - shift, pb.y)[2]))
    return best


def st_within(a, polygon):
    """1 when the point or polygon ``a`` lies inside ``polygon``, else 0."""
    gs = _two("ST_WITHIN", a, polygon)
    if gs is None:
        return None
    ga, gb = gs
    if ga.geom_type == "Point" and abs(ga.x) == 180.0:
        # on the antimeridian, where a split polygon's pieces meet: judge it at 180 against the
        # polygon with its pieces west of it moved a turn east, so the pieces are one again
        shapely = _LIB.shapely
        ga = shapely.Point(180.0, ga.y)
        gb = shapely.union_all([gb, shapely.affinity.translate(gb, xoff=360.0)])
    return int(ga.within(gb))


def st_intersects(a, b):
    """1 when the two geometries (line strings in the reference) share a point, else 0."""
    gs = _two("ST_INTERSECTS", a, b)
    return None if gs is None else int(gs[0].intersects(gs[1]))


def st_overlaps(a, b):
    """1 when two polygons overlap; 0 when they do not or one lies within the other."""
    gs = _two("ST_OVERLAPS", a, b)
    if gs is None:
        return None
    ga, gb = gs
    if ga.within(gb) or gb.within(ga):
        return 0
    if ga.area > 0 and gb.area > 0:  # areas (make_valid may turn a degenerate ring into a collection)
        return int(ga.intersection(gb).area > 0)
    return int(ga.overlaps(gb))


FUNCTIONS = [
    ScalarFunction("CreatePoint", create_point, 2, 2, doc="GeoJSON point from latitude, longitude"),
    ScalarFunction("CreateLineString", create_linestring, 2, None, doc="GeoJSON LineString from points"),
    ScalarFunction("CreatePolygon", create_polygon, 4, None, doc="GeoJSON Polygon from a closed list of points"),
    ScalarFunction("ST_DISTANCE", st_distance, 2, 2, doc="geodesic distance in metres"),
    ScalarFunction("ST_WITHIN", st_within, 2, 2, doc="1 if the first geography is within the polygon"),
    ScalarFunction("ST_INTERSECTS", st_intersects, 2, 2, doc="1 if the geographies intersect"),
    ScalarFunction("ST_OVERLAPS", st_overlaps, 2, 2, doc="1 if the polygons overlap"),
]


@hookimpl
def register_functions(register) -> None:
    for fn in FUNCTIONS:
        register(fn)
