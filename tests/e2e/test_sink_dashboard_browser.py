"""The live dashboard in headless Chromium: rows written to the sink service (a real
process) appear in the page's chart and table without a reload."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from google.protobuf import struct_pb2

from headwater.channel import sync_channel
from headwater.sinks import batch_to_proto
from headwater.v1 import sink_pb2 as spb
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.wait import wait_until

pytestmark = [pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, predicate, timeout=20.0, what="condition"):
    # Any error counts as "not yet": stale elements while the page redraws.
    last = wait_until(lambda: predicate(driver), timeout=timeout, every=0.2, fail=False, retry_on=(Exception,))
    if not last or isinstance(last, Exception):
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{driver.page_source[:3000]}")
    return last


def bars(driver) -> dict[str, float]:
    return {b.get_attribute("data-key"): float(b.get_attribute("data-value"))
            for b in driver.find_elements("css selector", "#bars rect.bar")}


def table_cells(driver) -> list[str]:
    return [td.text for td in driver.find_elements("css selector", "#rows tbody td")]


def test_rows_appear_in_chart_and_table_without_reload(service_process, root_policy, tmp_path, browser):
    proc = service_process("sink", "--data-dir", str(tmp_path / "sink"),
                           env={"HEADWATER_SINK_DASHBOARD_PORT": "0"})
    line = next(ln for ln in proc.lines if "sink dashboard on" in ln)
    url = re.search(r"http://\S+", line).group(0)

    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        config = struct_pb2.Struct()
        config.update({"chart": {"x": "startLocation", "y": "trips", "series": "WindowEnd"},
                       "title": "Trips per location"})
        stub.CreateSink(spb.CreateSinkRequest(sink_id="trips", sink=spb.Sink(kind="dashboard", config=config)),
                        timeout=10)

        # The index lists the dataset; its link opens the dataset page.
        browser.get(url + "/")
        link = wait_for(browser, lambda d: d.find_element("css selector", "a.dataset"), what="dataset link")
        assert "Trips per location" in link.text
        link.click()
        wait_for(browser, lambda d: d.find_element("id", "status").text == "live", what="live status")
        assert bars(browser) == {}
        marker = browser.execute_script("window.__noReload = 'same page'; return window.__noReload;")

        w0 = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
        first = pa.table({"WindowEnd": pa.array([w0, w0], pa.timestamp("us", tz="UTC")),
                          "startLocation": ["San Francisco", "Los Ángeles"], "trips": [3, 5]})
        stub.WriteRows(spb.WriteRowsRequest(sink="sinks/trips", batch=batch_to_proto(first)), timeout=10)
        got = wait_for(browser, lambda d: bars(d) == {"San Francisco": 3.0, "Los Ángeles": 5.0} and bars(d),
                       what="bars of the first window")
        assert got
        wait_for(browser, lambda d: "Los Ángeles" in table_cells(d) and "5" in table_cells(d),
                 what="first rows in the table")

        # A later window: the bars show the latest window only, the lines every window.
        w1 = w0 + timedelta(seconds=10)
        second = pa.table({"WindowEnd": pa.array([w1, w1], pa.timestamp("us", tz="UTC")),
                           "startLocation": ["San Francisco", "San José"], "trips": [7, 2]})
        stub.WriteRows(spb.WriteRowsRequest(sink="sinks/trips", batch=batch_to_proto(second)), timeout=10)
        wait_for(browser, lambda d: bars(d) == {"San Francisco": 7.0, "San José": 2.0},
                 what="bars of the second window")
        lines = {ln.get_attribute("data-key"): ln.get_attribute("points")
                 for ln in browser.find_elements("css selector", "#lines polyline.line")}
        assert set(lines) == {"San Francisco", "Los Ángeles", "San José"}
        assert len(lines["San Francisco"].split()) == 2  # one point per window
        wait_for(browser, lambda d: "San José" in table_cells(d) and len(
            d.find_elements("css selector", "#rows tbody tr")) == 4, what="four rows in the table")
        assert browser.execute_script("return window.__noReload;") == marker


def test_complete_mode_rows_replace_by_key_on_the_page(service_process, root_policy, tmp_path, browser):
    """A complete-mode dataset keeps every group: a later trigger's row for the same
    (window, location) replaces it on the page; the other groups stay."""
    proc = service_process("sink", "--data-dir", str(tmp_path / "sink"),
                           env={"HEADWATER_SINK_DASHBOARD_PORT": "0"})
    url = re.search(r"http://\S+", next(ln for ln in proc.lines if "sink dashboard on" in ln)).group(0)
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        config = struct_pb2.Struct()
        config.update({"chart": {"x": "startLocation", "y": "trips", "series": "WindowEnd"}})
        stub.CreateSink(spb.CreateSinkRequest(sink_id="c", sink=spb.Sink(
            kind="dashboard", config=config, output_mode=spb.OUTPUT_MODE_COMPLETE)), timeout=10)
        browser.get(url + "/datasets/c")
        wait_for(browser, lambda d: d.find_element("id", "status").text == "live", what="live status")
        w0 = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)

        def write(rows, ckpt):
            table = pa.table({"WindowEnd": pa.array([w0] * len(rows), pa.timestamp("us", tz="UTC")),
                              "startLocation": [r[0] for r in rows], "trips": [r[1] for r in rows]})
            stub.WriteRows(spb.WriteRowsRequest(sink="sinks/c", batch=batch_to_proto(table), writer="w",
                                                checkpoint_id=ckpt), timeout=10)

        write([("Oslo", 3), ("Lima", 5)], 1)
        wait_for(browser, lambda d: bars(d) == {"Oslo": 3.0, "Lima": 5.0}, what="first trigger")
        write([("Oslo", 4)], 2)
        wait_for(browser, lambda d: bars(d) == {"Oslo": 4.0, "Lima": 5.0}, what="Oslo replaced, Lima kept")
        assert len(browser.find_elements("css selector", "#rows tbody tr")) == 2
