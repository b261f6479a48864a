"""Dashboard and /metrics: optional authentication (a Listen token or the basic-auth user)."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request

from headwater.auth import Policy, PolicyStore, Right, generate_sas_token, new_key


def _get(url: str, authorization: str | None) -> int:
    req = urllib.request.Request(url)
    if authorization:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        assert exc.code != 401 or "Basic" in exc.headers.get("WWW-Authenticate", "")
        return exc.code


def test_dashboard_and_metrics_ask_for_a_listen_token_or_the_basic_user(service_process, _isolated_home):
    store = PolicyStore(_isolated_home / "auth.json").ensure()
    listen = Policy("pages-listen", new_key(), frozenset({Right.LISTEN}))
    send = Policy("pages-send", new_key(), frozenset({Right.SEND}))
    store.put(listen)
    store.put(send)
    proc = service_process("sink", "--metrics-port", "0", env={
        "HEADWATER_HTTP_AUTH": "true", "HEADWATER_HTTP_BASIC_AUTH_USER": "viewer",
        "HEADWATER_HTTP_BASIC_AUTH_PASSWORD": "s3cret"})
    out = proc.output()
    dashboard = re.search(r"sink dashboard on (\S+)", out).group(1)
    metrics_port = re.search(r'"metrics_port": (\d+)', out).group(1)
    basic = "Basic " + base64.b64encode(b"viewer:s3cret").decode()
    wrong = "Basic " + base64.b64encode(b"viewer:guess").decode()
    ns = "headwater://localhost/"
    for url in (f"{dashboard}/api/datasets", f"{dashboard}/", f"http://127.0.0.1:{metrics_port}/metrics"):
        assert _get(url, None) == 401, url
        assert _get(url, wrong) == 401, url
        assert _get(url, generate_sas_token(ns, send.name, send.key)) == 401, url  # Send is not Listen
        assert _get(url, generate_sas_token("headwater://other.example.com/", listen.name, listen.key)) == 401
        assert _get(url, basic) == 200, url
        assert _get(url, generate_sas_token(ns, listen.name, listen.key)) == 200, url
