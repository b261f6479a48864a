"""Geospatial functions (plugins/geospatial.py) with the reference's own examples, through
the engine where the example is a query."""

from __future__ import annotations

import pytest

from headwater.errors import HeadwaterError
from headwater.plugins import geospatial as G
from headwater.services.processing.testing import run_query

SQUARE10 = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]]]}


def test_create_functions_documented_examples() -> None:
    events = [{"latitude": 3.0, "longitude": -10.2}, {"latitude": -87.33, "longitude": 20.2321}]
    out = run_query(
        "SELECT CreatePoint(input.latitude, input.longitude) AS p,"
        " CreateLineString(CreatePoint(input.latitude, input.longitude), CreatePoint(10.0, 10.0),"
        " CreatePoint(10.5, 10.5)) AS l,"
        " CreatePolygon(CreatePoint(input.latitude, input.longitude), CreatePoint(10.0, 10.0),"
        " CreatePoint(10.5, 10.5), CreatePoint(input.latitude, input.longitude)) AS g FROM input",
        {"input": events})["output"]
    assert out[0]["p"] == {"type": "Point", "coordinates": [-10.2, 3.0]}
    assert out[1]["p"] == {"type": "Point", "coordinates": [20.2321, -87.33]}
    assert out[0]["l"] == {"type": "LineString", "coordinates": [[-10.2, 3.0], [10.0, 10.0], [10.5, 10.5]]}
    assert out[1]["g"] == {"type": "Polygon", "coordinates": [[[20.2321, -87.33], [10.0, 10.0], [10.5, 10.5],
                                                                [20.2321, -87.33]]]}


def test_st_distance_documented_example_in_metres() -> None:
    out = run_query("SELECT ST_DISTANCE(input.carPosition, input.warehouse) AS d FROM input",
                    {"input": [{"carPosition": {"type": "Point", "coordinates": [-5.0, -5.0]},
                                "warehouse": {"type": "Point", "coordinates": [0.0, 0.0]}}]})["output"]
    assert out[0]["d"] == pytest.approx(784028.74077501823, abs=0.01)
    assert G.st_distance("POINT(0 0)", "POINT(0 1)") == pytest.approx(110574.4, abs=1)  # WKT, 1 degree of latitude
    assert G.st_distance(SQUARE10, {"type": "Point", "coordinates": [50, 50]}) == 0.0  # documented for polygons
    line = {"type": "LineString", "coordinates": [[0, 0], [0, 10]]}
    assert G.st_distance(line, "POINT(0 5)") == 0.0
    assert G.st_distance(None, line) is None


def test_st_within_documented_example() -> None:
    rows = [{"deliveryDestination": {"type": "Point", "coordinates": [76.6, 10.1]},
             "warehouse": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]]}},
            {"deliveryDestination": {"type": "Point", "coordinates": [15.0, 15.0]},
             "warehouse": {"type": "Polygon", "coordinates": [[[10.0, 10.0], [20.0, 10.0], [20.0, 20.0],
                                                              [10.0, 20.0], [10.0, 10.0]]]}}]
    out = run_query("SELECT ST_WITHIN(input.deliveryDestination, input.warehouse) AS w FROM input",
                    {"input": rows})["output"]
    assert [r["w"] for r in out] == [0, 1]
    assert G.st_within("POLYGON((1 1, 2 1, 2 2, 1 1))", SQUARE10) == 1


def test_st_overlaps_documented_example() -> None:
    a1 = {"type": "Polygon", "coordinates": [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]]}
    b1 = {"type": "Polygon", "coordinates": [[30.0, 30.0], [40.0, 30.0], [40.0, 40.0], [30.0, 40.0], [30.0, 30.0]]}
    a2 = {"type": "Polygon", "coordinates": [[0.0, 0.0], [20.0, 0.0], [20.0, 20.0], [0.0, 20.0], [0.0, 0.0]]}
    b2 = {"type": "Polygon", "coordinates": [[10.0, 10.0], [40.0, 10.0], [40.0, 40.0], [40.0, 20.0], [40.0, 40.0]]}
    out = run_query("SELECT ST_OVERLAPS(input.datacenterArea, input.stormArea) AS o FROM input",
                    {"input": [{"datacenterArea": a1, "stormArea": b1},
                               {"datacenterArea": a2, "stormArea": b2}]})["output"]
    assert [r["o"] for r in out] == [0, 1]
    assert G.st_overlaps(SQUARE10, "POLYGON((1 1, 2 1, 2 2, 1 1))") == 0  # one within the other


def test_st_intersects() -> None:
    a = {"type": "LineString", "coordinates": [[0.0, 0.0], [10.0, 10.0]]}
    b = {"type": "LineString", "coordinates": [[0.0, 10.0], [10.0, 0.0]]}
    c = {"type": "LineString", "coordinates": [[20.0, 20.0], [30.0, 30.0]]}
    out = run_query("SELECT ST_INTERSECTS(input.a, input.b) AS i FROM input",
                    {"input": [{"a": a, "b": b}, {"a": a, "b": c}]})["output"]
    assert [r["i"] for r in out] == [1, 0]


def test_bad_geometries_fail_with_the_function_name() -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        G.create_linestring(G.create_point(1, 2))
    with pytest.raises(ValueError, match="close the loop"):
        G.create_polygon(G.create_point(0, 0), G.create_point(0, 1), G.create_point(1, 1), G.create_point(1, 0))
    with pytest.raises(ValueError, match="latitude"):
        G.create_point(91, 0)
    with pytest.raises(HeadwaterError, match="ST_WITHIN: argument 1 is not a GeoJSON or WKT geometry"):
        run_query("SELECT ST_WITHIN(a, b) AS w FROM input", {"input": [{"a": "nonsense(", "b": SQUARE10}]})


def test_edges_follow_great_circles() -> None:
    # the great circle from (-100, 50) to (0, 50) bulges north to about 58 degrees at -50:
    # (-50, 55) lies inside this geography although it is north of the straight edge in degrees
    big = {"type": "Polygon", "coordinates": [[[-100, 0], [0, 0], [0, 50], [-100, 50], [-100, 0]]]}
    assert G.st_within({"type": "Point", "coordinates": [-50, 55]}, big) == 1
    assert G.st_within({"type": "Point", "coordinates": [-50, 62]}, big) == 0


def test_left_hand_ring_is_the_globe_minus_the_polygon() -> None:
    right_hand = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}
    left_hand = {"type": "Polygon", "coordinates": [[[0, 0], [0, 10], [10, 10], [10, 0], [0, 0]]]}
    inside, far = {"type": "Point", "coordinates": [5, 5]}, {"type": "Point", "coordinates": [50, 50]}
    assert (G.st_within(inside, right_hand), G.st_within(far, right_hand)) == (1, 0)
    assert (G.st_within(inside, left_hand), G.st_within(far, left_hand)) == (0, 1)


def _pt(lat, lon):
    return G.create_point(lat, lon)


def test_geometries_across_the_antimeridian_are_split_there() -> None:
    # the line from longitude 179 to -179 along the equator is 2 degrees long, across the
    # antimeridian; it is not the 358 degrees through longitude 0 a flat map would draw
    dateline = G.create_linestring(_pt(0, 179), _pt(0, -179))
    assert G.st_intersects(dateline, G.create_linestring(_pt(1, 179.5), _pt(-1, 179.5))) == 1
    assert G.st_intersects(dateline, G.create_linestring(_pt(1, -179.5), _pt(-1, -179.5))) == 1
    assert G.st_intersects(dateline, G.create_linestring(_pt(1, 0), _pt(-1, 0))) == 0
    # 1 degree of latitude north of the line's middle (at ±180): about 110.6 km, not 157 km
    assert G.st_distance(dateline, _pt(1, 180)) == pytest.approx(110_574, rel=1e-3)
    assert G.st_distance(dateline, _pt(1, -179.9)) == pytest.approx(110_574, rel=1e-3)
    # a polygon from 170 east to -170, counter-clockwise: the 20 degrees around the antimeridian
    pacific = G.create_polygon(_pt(-10, 170), _pt(-10, -170), _pt(10, -170), _pt(10, 170), _pt(-10, 170))
    assert [G.st_within(_pt(0, lon), pacific) for lon in (175, 180, -180, -175, 0, 160, -160)] == [1, 1, 1, 1, 0, 0, 0]
    assert G.st_distance(_pt(0, 179.5), _pt(0, -179.5)) == pytest.approx(111_319.5, rel=1e-4)
    # through the engine, as a query writes it
    out = run_query("SELECT ST_WITHIN(CreatePoint(lat, lon), CreatePolygon(CreatePoint(-10, 170),"
                    " CreatePoint(-10, -170), CreatePoint(10, -170), CreatePoint(10, 170), CreatePoint(-10, 170)))"
                    " AS w FROM input", {"input": [{"lat": 5, "lon": -178}, {"lat": 5, "lon": 2}]})["output"]
    assert out == [{"w": 1}, {"w": 0}]
