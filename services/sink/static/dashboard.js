// Headwater live dashboard: server-sent events in, hand-drawn SVG charts and a table out.
// No libraries and nothing from the internet.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var COLORS = ["#0b7285", "#e76f51", "#2a9d8f", "#f4a261", "#6a4c93", "#e63946", "#457b9d", "#8ab17d",
                "#b5838d", "#264653"];
  var MAX_ROWS = 5000, TABLE_ROWS = 200;

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function isTime(v) { return typeof v === "string" && /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d/.test(v); }
  function fmt(v) {
    if (v === null || v === undefined) { return ""; }
    if (typeof v === "object") { return JSON.stringify(v); }
    return String(v);
  }

  // Which columns are the key (category), the value and the window time.
  function fields(rows, chart) {
    var f = {key: chart.key || null, value: chart.value || null, time: chart.time || null};
    if (!rows.length) { return f; }
    var cols = Object.keys(rows[rows.length - 1]);
    var sample = rows[rows.length - 1];
    if (!f.time) {
      var named = cols.filter(function (c) { return isTime(sample[c]) && /time|window|end|date/i.test(c); });
      var any = cols.filter(function (c) { return isTime(sample[c]); });
      f.time = named[0] || any[0] || null;
    }
    if (!f.value) {
      var nums = cols.filter(function (c) { return isNum(sample[c]) && c !== f.time; });
      f.value = nums.length ? nums[nums.length - 1] : null;
    }
    if (!f.key) {
      var strs = cols.filter(function (c) { return c !== f.time && c !== f.value && typeof sample[c] === "string"; });
      f.key = strs[0] || null;
    }
    return f;
  }

  function clear(svg) { while (svg.firstChild) { svg.removeChild(svg.firstChild); } }

  function drawBars(svg, rows, f) {
    clear(svg);
    if (!rows.length || !f.value) { svg.appendChild(el("text", {x: 20, y: 30}, "waiting for rows")); return; }
    var latest = rows;
    if (f.time) {
      var max = rows.reduce(function (m, r) { return r[f.time] > m ? r[f.time] : m; }, "");
      latest = rows.filter(function (r) { return r[f.time] === max; });
      svg.appendChild(el("text", {x: 10, y: 14, "class": "window"}, "window " + max));
    }
    var byKey = {};
    latest.forEach(function (r) { byKey[f.key ? fmt(r[f.key]) : "value"] = Number(r[f.value]) || 0; });
    var keys = Object.keys(byKey).sort();
    var top = Math.max.apply(null, keys.map(function (k) { return byKey[k]; }).concat([1]));
    var W = 640, H = 300, L = 40, B = 250, T = 36;
    var step = (W - L - 10) / Math.max(keys.length, 1), bw = Math.max(4, step * 0.7);
    svg.appendChild(el("line", {x1: L, y1: B, x2: W - 5, y2: B, "class": "axis"}));
    svg.appendChild(el("line", {x1: L, y1: T, x2: L, y2: B, "class": "axis"}));
    svg.appendChild(el("text", {x: 2, y: T + 4}, fmt(top)));
    keys.forEach(function (k, i) {
      var h = (B - T) * byKey[k] / top, x = L + i * step + (step - bw) / 2;
      var rect = el("rect", {x: x, y: B - h, width: bw, height: Math.max(h, 0), fill: COLORS[i % COLORS.length],
                             "class": "bar", "data-key": k, "data-value": byKey[k]});
      rect.appendChild(el("title", {}, k + ": " + byKey[k]));
      svg.appendChild(rect);
      svg.appendChild(el("text", {x: x + bw / 2, y: B - h - 3, "text-anchor": "middle"}, fmt(byKey[k])));
      svg.appendChild(el("text", {x: x + bw / 2, y: B + 14, "text-anchor": "middle", "class": "bar-label"},
                         k.length > 14 ? k.slice(0, 13) + "…" : k));
    });
  }

  function drawLines(svg, rows, f) {
    clear(svg);
    if (!rows.length || !f.value || !f.time) {
      svg.appendChild(el("text", {x: 20, y: 30}, f.time || !rows.length ? "waiting for rows" : "no time column"));
      return;
    }
    var times = Array.from(new Set(rows.map(function (r) { return r[f.time]; }))).sort().slice(-60);
    var series = {};
    rows.forEach(function (r) {
      var k = f.key ? fmt(r[f.key]) : "value";
      (series[k] = series[k] || {})[r[f.time]] = Number(r[f.value]) || 0;
    });
    var keys = Object.keys(series).sort().slice(0, COLORS.length);
    var top = 1;
    keys.forEach(function (k) { times.forEach(function (t) { if (series[k][t] > top) { top = series[k][t]; } }); });
    var W = 640, H = 300, L = 40, R = 130, B = 250, T = 20;
    var dx = times.length > 1 ? (W - L - R) / (times.length - 1) : 0;
    svg.appendChild(el("line", {x1: L, y1: B, x2: W - R, y2: B, "class": "axis"}));
    svg.appendChild(el("line", {x1: L, y1: T, x2: L, y2: B, "class": "axis"}));
    svg.appendChild(el("text", {x: 2, y: T + 4}, fmt(top)));
    svg.appendChild(el("text", {x: L, y: B + 14}, times[0].slice(11, 19)));
    svg.appendChild(el("text", {x: W - R, y: B + 14, "text-anchor": "end"}, times[times.length - 1].slice(11, 19)));
    keys.forEach(function (k, i) {
      var pts = [];
      times.forEach(function (t, j) {
        if (t in series[k]) { pts.push((L + j * dx).toFixed(1) + "," + (B - (B - T) * series[k][t] / top).toFixed(1)); }
      });
      var color = COLORS[i % COLORS.length];
      svg.appendChild(el("polyline", {points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2,
                                      "class": "line", "data-key": k}));
      pts.forEach(function (p) {
        var xy = p.split(",");
        svg.appendChild(el("circle", {cx: xy[0], cy: xy[1], r: 2.5, fill: color}));
      });
      svg.appendChild(el("rect", {x: W - R + 10, y: T + i * 16, width: 10, height: 10, fill: color}));
      svg.appendChild(el("text", {x: W - R + 24, y: T + 9 + i * 16}, k.length > 16 ? k.slice(0, 15) + "…" : k));
    });
  }

  function drawTable(table, rows, count) {
    var thead = table.tHead, tbody = table.tBodies[0];
    var cols = [];
    rows.forEach(function (r) { Object.keys(r).forEach(function (c) { if (cols.indexOf(c) < 0) { cols.push(c); } }); });
    thead.innerHTML = "";
    var tr = thead.insertRow();
    cols.forEach(function (c) { var th = document.createElement("th"); th.textContent = c; tr.appendChild(th); });
    tbody.innerHTML = "";
    rows.slice(-TABLE_ROWS).reverse().forEach(function (r) {
      var row = tbody.insertRow();
      cols.forEach(function (c) { row.insertCell().textContent = fmt(r[c]); });
    });
    count.textContent = "(" + rows.length + (rows.length > TABLE_ROWS ? ", newest " + TABLE_ROWS + " shown" : "") + ")";
  }

  function keyOf(r, cols) { return JSON.stringify(cols.map(function (c) { return r[c]; })); }

  function dataset(name) {
    var state = {rows: [], info: null};
    var status = document.getElementById("status");
    function render() {
      var info = state.info || {chart: {}};
      var f = fields(state.rows, info.chart || {});
      document.getElementById("fields").textContent = state.rows.length
        ? "key: " + (f.key || "-") + " · value: " + (f.value || "-") + " · window: " + (f.time || "-") : "";
      drawBars(document.getElementById("bars"), state.rows, f);
      drawLines(document.getElementById("lines"), state.rows, f);
      drawTable(document.getElementById("rows"), state.rows, document.getElementById("count"));
    }
    function apply(msg) {
      var rows = msg.rows || [];
      if (msg.replace) {
        state.rows = rows.slice();
      } else if (msg.keys && msg.keys.length) {
        // update, and complete by key: the rows replace the rows with the same key
        var cols = msg.keys, index = {};
        state.rows.forEach(function (r, i) { index[keyOf(r, cols)] = i; });
        rows.forEach(function (r) {
          var k = keyOf(r, cols);
          if (k in index) { state.rows[index[k]] = r; } else { index[k] = state.rows.length; state.rows.push(r); }
        });
      } else {
        state.rows = state.rows.concat(rows);
      }
      if (state.rows.length > MAX_ROWS) { state.rows = state.rows.slice(-MAX_ROWS); }
      render();
    }
    var es = new EventSource("/api/datasets/" + encodeURIComponent(name) + "/events");
    es.addEventListener("snapshot", function (e) {
      var msg = JSON.parse(e.data);
      state.info = msg;
      document.getElementById("title").textContent = msg.title;
      document.getElementById("crumb").textContent = msg.name + " (" + msg.kind + ", " + msg.mode + ")";
      document.title = msg.title + " · Headwater";
      apply(msg);
    });
    es.addEventListener("rows", function (e) { apply(JSON.parse(e.data)); });
    es.addEventListener("closed", function () { status.textContent = "closed"; status.className = "status"; es.close(); });
    es.onopen = function () { status.textContent = "live"; status.className = "status live"; };
    es.onerror = function () { status.textContent = "reconnecting"; status.className = "status"; };
    render();
  }

  function index() {
    var es = new EventSource("/api/events");
    es.addEventListener("datasets", function (e) {
      var list = JSON.parse(e.data), tbody = document.querySelector("#datasets tbody");
      tbody.innerHTML = "";
      list.forEach(function (d) {
        var tr = tbody.insertRow(), a = document.createElement("a");
        a.href = "/datasets/" + encodeURIComponent(d.name);
        a.textContent = d.title === d.name ? d.name : d.title + " (" + d.name + ")";
        a.className = "dataset";
        tr.insertCell().appendChild(a);
        tr.insertCell().textContent = d.kind;
        tr.insertCell().textContent = d.mode;
        tr.insertCell().textContent = d.rows_written;
      });
      document.getElementById("empty").style.display = list.length ? "none" : "";
    });
  }

  window.Headwater = {dataset: dataset, index: index, fields: fields};
})();
