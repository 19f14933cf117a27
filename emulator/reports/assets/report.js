// dmemu report: the charts (plotly.js, inlined) and the per-device lanes, drawn from the
// data embedded in the page. Nothing is fetched: the page works offline.
"use strict";
(function () {
  const PAGE = 25;
  const figuresNode = document.getElementById("figures");
  const search = document.getElementById("search");

  // -- a conformance page: filter the checks ------------------------------------------
  if (!figuresNode) {
    if (search) {
      search.addEventListener("input", function () {
        const q = search.value.trim().toLowerCase();
        document.querySelectorAll(".checks tbody tr").forEach(function (row) {
          row.classList.toggle("hidden", q !== "" && !row.textContent.toLowerCase().includes(q));
        });
      });
    }
    return;
  }

  const F = JSON.parse(figuresNode.textContent);
  const MIN = 60000;
  const when = function (minute) { return new Date(F.start_ms + minute * MIN); };
  const days = function (n) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(new Date(F.start_ms + i * 86400000));
    return out;
  };
  const layout = function (extra) {
    return Object.assign({ margin: { l: 48, r: 12, t: 24, b: 36 }, barmode: "stack",
      legend: { orientation: "h" }, hovermode: "x unified" }, extra || {});
  };
  const config = { displaylogo: false, responsive: true };
  const STATE_COLORS = ["#2da44e", "#d4a72c", "#cf222e", "#afb8c1"];
  const STATES = ["valid", "unreachable", "expired", "none"];
  const OFF = { "battery-saver": "#d4a72c", "data-sense": "#0969da" };  // else dark

  // channels by group: the share of its devices in each state
  const grid = document.getElementById("chart-states");
  F.groups.forEach(function (group) {
    const div = document.createElement("div");
    grid.appendChild(div);
    const x = F.states.map(function (s) { return when(s.minute); });
    const traces = STATES.map(function (state, i) {
      return {
        x: x, name: state, stackgroup: "one", groupnorm: "percent", mode: "none",
        fillcolor: STATE_COLORS[i], line: { color: STATE_COLORS[i] },
        y: F.states.map(function (s) { return (s[group] || [0, 0, 0, 0])[i]; }),
      };
    });
    Plotly.newPlot(div, traces, layout({ title: { text: group, font: { size: 13 } },
      yaxis: { ticksuffix: "%", range: [0, 100] }, showlegend: false }), config);
  });

  const perDay = function (id, data) {
    const traces = Object.keys(data).map(function (key) {
      return { type: "bar", name: key, x: days(data[key].length), y: data[key] };
    });
    Plotly.newPlot(id, traces, layout(), config);
  };
  perDay("chart-pushes", F.pushes_per_day);
  perDay("chart-sessions", F.sessions_per_day);

  const L = F.latency;
  const fmt = function (ms) {
    if (ms === null || ms === undefined) return "-";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 3600000) return (ms / 60000).toFixed(1) + " min";
    if (ms < 86400000) return (ms / 3600000).toFixed(1) + " h";
    return (ms / 86400000).toFixed(1) + " d";
  };
  Plotly.newPlot("chart-latency", [{ type: "bar", x: L.bins, y: L.counts, name: "pushes",
    marker: { color: "#0969da" } }], layout({ title: { font: { size: 13 }, text:
    L.pushes + " pushes that started a session: p50 " + fmt(L.p50_ms) + ", p90 " +
    fmt(L.p90_ms) + ", p99 " + fmt(L.p99_ms) + ", max " + fmt(L.max_ms) }, hovermode: "closest" }),
    config);

  const reasons = {};
  F.offline.forEach(function (sample) { Object.keys(sample).forEach(function (r) { reasons[r] = 1; }); });
  const offlineX = F.states.map(function (s) { return when(s.minute); });
  const offlineTraces = Object.keys(reasons).sort().map(function (reason) {
    return { x: offlineX, y: F.offline.map(function (s) { return s[reason] || 0; }), name: reason,
      mode: "lines", line: { shape: "hv", color: OFF[reason] || "#24292f" } };
  });
  if (offlineTraces.length === 0) {
    offlineTraces.push({ x: offlineX, y: offlineX.map(function () { return 0; }), name: "none",
      mode: "lines" });
  }
  Plotly.newPlot("chart-offline", offlineTraces, layout({ barmode: undefined }), config);

  // -- lanes: inflated when first shown, drawn a page at a time ---------------------------
  let data = null;
  let matches = [];
  let page = 0;
  const lanesDiv = document.getElementById("lanes");
  const pager = document.getElementById("pager");
  const found = document.getElementById("found");
  const span = Math.max(1, (F.end_ms - F.start_ms) / MIN);
  const W = 1000;
  const X = function (minute) { return (minute / span) * W; };
  const CHANNEL = { valid: "#2da44e", renewed: "#8c959f", expired: "#cf222e", revoked: "#8250df",
    open: "#2da44e" };
  const TRIGGER = { push: "#0969da", poll: "#8c959f", enrollment: "#1a7f37", renewal: "#bf8700",
    registration: "#8250df", retry: "#cf222e" };
  const svgNS = "http://www.w3.org/2000/svg";

  function inflate() {
    const text = document.getElementById("lanes-data").textContent.trim();
    const bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  function stamp(minute) { return when(minute).toISOString().replace(".000Z", "Z"); }

  function el(name, attrs, title) {
    const node = document.createElementNS(svgNS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (title) {
      const t = document.createElementNS(svgNS, "title");
      t.textContent = title;
      node.appendChild(t);
    }
    return node;
  }

  function lane(index) {
    const S = data.strings;
    const row = data.lanes[index];
    const channels = row[1], offline = row[2], pushes = row[3], sessions = row[4];
    const div = document.createElement("div");
    div.className = "lane";
    div.dataset.device = data.devices[index];
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = data.devices[index];
    const small = document.createElement("small");
    small.textContent = F.groups[row[0]] + ": " + pushes.length + " pushes, " + sessions.length +
      " sessions";
    name.appendChild(small);
    div.appendChild(name);
    const svg = el("svg", { viewBox: "0 0 " + W + " 56", preserveAspectRatio: "none" });
    channels.forEach(function (c) {
      const end = S[c[2]];
      svg.appendChild(el("rect", { x: X(c[0]), y: 2, width: Math.max(1, X(c[1]) - X(c[0])),
        height: 10, fill: CHANNEL[end] || "#2da44e" }, "channel " + stamp(c[0]) + " to " +
        stamp(c[1]) + " (" + end + ")"));
    });
    offline.forEach(function (o) {
      const reason = S[o[2]];
      svg.appendChild(el("rect", { x: X(o[0]), y: 14, width: Math.max(1, X(o[1]) - X(o[0])),
        height: 6, fill: OFF[reason] || "#24292f" }, reason + " " + stamp(o[0]) + " to " + stamp(o[1])));
    });
    const pushAt = {};
    pushes.forEach(function (p) {
      const msg = S[p[3]];
      const x = X(p[0]);
      if (msg) pushAt[msg] = x;
      svg.appendChild(el("line", { x1: x, x2: x, y1: 22, y2: 34, "stroke-width": 2,
        stroke: p[1] === 200 ? "#0969da" : "#cf222e" }, "push " + stamp(p[0]) + ": " + p[1] + " " +
        S[p[2]] + (msg ? ", Msg-ID " + msg : "")));
    });
    sessions.forEach(function (s) {
      const trigger = S[s[1]], msg = S[s[3]];
      const x = X(s[0]);
      if (msg && pushAt[msg] !== undefined) {
        svg.appendChild(el("line", { x1: pushAt[msg], y1: 34, x2: x, y2: 46, stroke: "#0969da",
          "stroke-width": 1 }));
      }
      svg.appendChild(el("circle", { cx: x, cy: 48, r: 3, fill: TRIGGER[trigger] || "#57606a" },
        trigger + " session " + stamp(s[0]) + ", SessionID " + S[s[2]] + (msg ? ", Msg-ID " + msg : "") +
        ", " + (S[s[4]] || "open")));
    });
    div.appendChild(svg);
    return div;
  }

  function render() {
    lanesDiv.textContent = "";
    const first = page * PAGE;
    matches.slice(first, first + PAGE).forEach(function (i) { lanesDiv.appendChild(lane(i)); });
    found.textContent = matches.length + " of " + data.devices.length + " devices";
    pager.textContent = "";
    const pages = Math.ceil(matches.length / PAGE);
    for (let p = 0; p < pages && pages > 1; p++) {
      if (pages > 12 && p > 2 && p < pages - 3 && Math.abs(p - page) > 2) {
        if (!pager.lastChild || pager.lastChild.textContent !== "...") {
          const gap = document.createElement("span");
          gap.textContent = "...";
          pager.appendChild(gap);
        }
        continue;
      }
      const button = document.createElement("button");
      button.textContent = String(p + 1);
      button.disabled = p === page;
      button.addEventListener("click", function () { page = p; render(); });
      pager.appendChild(button);
    }
  }

  function filter() {
    const q = search.value.trim().toLowerCase();
    matches = [];
    data.devices.forEach(function (d, i) { if (q === "" || d.toLowerCase().includes(q)) matches.push(i); });
    page = 0;
    render();
  }

  // inflated on demand: when the devices come into view, or a search starts
  let loading = null;
  function ensureLanes() {
    if (loading === null) {
      loading = inflate().then(function (loaded) {
        data = loaded;
        filter();
      }).catch(function (err) {
        lanesDiv.textContent = "the lanes could not be read: " + err;
      });
    }
    return loading;
  }
  search.addEventListener("input", function () { ensureLanes().then(function () { if (data) filter(); }); });
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries, observer) {
      if (entries.some(function (e) { return e.isIntersecting; })) {
        observer.disconnect();
        ensureLanes();
      }
    }).observe(document.getElementById("devices"));
  } else {
    ensureLanes();
  }
})();
