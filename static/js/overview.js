// Overview: Plotly charts fed by the live metrics socket (/ws/metrics/?window=...).
// The server sends a snapshot on connect, then coalesced updates with a sequence number;
// a gap in the sequence (a dropped message) triggers a re-read instead of drawing a hole.
(function () {
  "use strict";
  const F = window.aiosFormat;
  const initial = JSON.parse(document.getElementById("overview-snapshot").textContent);
  const windowName = initial.window;
  const state = { seq: initial.seq, series: initial.series, summary: initial.summary, panels: initial.panels,
                  paused: false };
  const config = { displayModeBar: false, responsive: true };
  const baseLayout = {
    margin: { l: 50, r: 50, t: 10, b: 36 }, height: 260, showlegend: true,
    legend: { orientation: "h", y: -0.22, x: 0 }, xaxis: { type: "date" },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#374151" },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "x unified",
  };

  function times() { return state.series.t.map((t) => new Date(t)); }

  function cumulative(values) {
    let run = 0;
    return values.map((v) => (run += v || 0));
  }

  function draw() {
    const x = times();
    const s = state.series;
    // customdata: the calls each point's percentiles come from (shown on hover).
    Plotly.react("chart-latency", [
      { x, y: s.p50, name: "P50", mode: "lines", line: { color: "#2563eb" }, customdata: s.calls,
        hovertemplate: "%{y:.0f} ms (%{customdata} calls)" },
      { x, y: s.p95, name: "P95", mode: "lines", line: { color: "#d97706" }, hovertemplate: "%{y:.0f} ms" },
      { x, y: s.p99, name: "P99", mode: "lines", line: { color: "#dc2626" }, hovertemplate: "%{y:.0f} ms" },
    ], { ...baseLayout, yaxis: { title: { text: "ms" }, rangemode: "tozero" } }, config);
    Plotly.react("chart-cost", [
      { x, y: s.cost, name: `Cost per ${s.step_s >= 3600 ? "hour" : s.step_s >= 600 ? "10 min" : "minute"}`,
        type: "bar", marker: { color: "#93c5fd" }, hovertemplate: "$%{y:.4f}" },
      { x, y: cumulative(s.cost), name: "Cumulative", mode: "lines", yaxis: "y2", line: { color: "#1e3a8a" },
        hovertemplate: "$%{y:.4f}" },
    ], { ...baseLayout, yaxis: { title: { text: "USD" }, rangemode: "tozero" },
         yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false } }, config);
    Plotly.react("chart-calls", [
      { x, y: s.calls, name: "Calls", type: "bar", marker: { color: "#a5b4fc" } },
      { x, y: s.error_rate.map((v) => (v === null ? null : v * 100)), name: "Error rate", mode: "lines+markers",
        yaxis: "y2", line: { color: "#dc2626" }, hovertemplate: "%{y:.1f}%" },
    ], { ...baseLayout, yaxis: { title: { text: "calls" }, rangemode: "tozero" },
         yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", ticksuffix: "%", showgrid: false } }, config);
    Plotly.react("chart-cache", [
      { x, y: s.cache_lookups, name: "Lookups", type: "bar", marker: { color: "#bbf7d0" } },
      { x, y: s.cache_hit_rate.map((v) => (v === null ? null : v * 100)), name: "Hit rate", mode: "lines+markers",
        yaxis: "y2", line: { color: "#15803d" }, connectgaps: false, hovertemplate: "%{y:.1f}%" },
    ], { ...baseLayout, yaxis: { title: { text: "lookups" }, rangemode: "tozero" },
         yaxis2: { overlaying: "y", side: "right", range: [0, 100], dtick: 25, ticksuffix: "%", showgrid: false } }, config);
    document.getElementById("cache-empty").hidden = s.cache_lookups.some((n) => n > 0);
    drawSummary();
  }

  function drawSummary() {
    const t = state.summary.summary;
    document.getElementById("kpi-calls").textContent = F.int(t.total_calls);
    document.getElementById("kpi-errors").textContent = F.pct(t.error_rate);
    document.getElementById("kpi-p95").textContent = F.ms(t.p95_latency_ms);
    document.getElementById("kpi-cost").textContent = F.usd(t.total_cost_usd);
    document.getElementById("kpi-tokens").textContent = F.compact(t.total_tokens);
    const unpriced = document.getElementById("kpi-unpriced");
    unpriced.hidden = !t.unpriced_calls;
    unpriced.textContent = t.unpriced_calls ? `+ ${F.int(t.unpriced_calls)} calls of unpriced models` : "";
    document.getElementById("empty-state").hidden = t.total_calls > 0;
    table("table-agents", "Agent", state.summary.by_agent);
    table("table-models", "Model", state.summary.by_model);
    table("table-kinds", "Kind", state.summary.by_kind || {}, "Spans");
    panels(state.panels);
  }

  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const CELL = {
    text: (v) => (v === null || v === undefined || v === "" ? '<span class="muted">–</span>' : esc(v)),
    int: F.int, pct: F.pct, usd: F.usd, ms: F.ms,
    score: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3)),
  };

  // Panels other apps register (observability.panels): generic tables.
  function panels(list) {
    const root = document.getElementById("panels");
    if (!list) return;
    root.innerHTML = list.map((p) => {
      const head = p.columns.map((c) => `<th class="${c.format === "text" ? "" : "num"}">${esc(c.label)}</th>`).join("");
      let body;
      if (p.error) body = `<p class="muted">${esc(p.error)}</p>`;
      else if (!p.rows.length) body = `<p class="muted">${esc(p.empty)}</p>`;
      else body = `<table class="table"><tr>${head}</tr>` + p.rows.map((r) => "<tr>" + r.map((v, i) => {
        const f = p.columns[i].format;
        return `<td class="${f === "text" ? "" : "num"}">${(CELL[f] || CELL.text)(v)}</td>`;
      }).join("") + "</tr>").join("") + "</table>";
      const note = p.note ? `<p class="muted small">${esc(p.note)}</p>` : "";
      return `<section class="card" data-panel="${esc(p.key)}"><h2>${esc(p.title)}</h2>${note}${body}</section>`;
    }).join("");
  }

  function callers(rows) {
    const el = document.getElementById("table-callers");
    if (!rows || !rows.length) { el.innerHTML = '<p class="muted">No traces in this window.</p>'; return; }
    el.innerHTML = '<table class="table"><tr><th>User</th><th>API token</th><th class="num">Traces</th>' +
      '<th class="num">Tokens</th><th class="num">Cost</th></tr>' + rows.map((r) =>
        `<tr><td>${r.user ? esc(r.user) : '<span class="muted">system</span>'}</td>` +
        `<td>${r.api_token ? esc(r.api_token) : '<span class="muted">–</span>'}</td>` +
        `<td class="num">${F.int(r.traces)}</td><td class="num">${F.compact(r.tokens)}</td>` +
        `<td class="num">${F.usd(r.cost_usd)}</td></tr>`).join("") + "</table>";
  }

  function table(id, label, rows, countLabel) {
    const el = document.getElementById(id);
    const names = Object.keys(rows).sort((a, b) => rows[b].total_calls - rows[a].total_calls);
    if (!names.length) { el.innerHTML = '<p class="muted">Nothing recorded in this window.</p>'; return; }
    const head = `<tr><th>${label}</th><th class="num">${countLabel || "Calls"}</th><th class="num">Error rate</th>` +
      '<th class="num">P95</th><th class="num">Tokens</th><th class="num">Cost</th></tr>';
    const body = names.map((n) => {
      const r = rows[n];
      const sim = n && n.startsWith("sim/") ? ' <span class="pill pill-sim">simulated</span>' : "";
      return `<tr><td>${n ? esc(n) + sim : `<span class="muted">(no ${label.toLowerCase()})</span>`}</td><td class="num">${F.int(r.total_calls)}</td>` +
        `<td class="num">${F.pct(r.error_rate)}</td><td class="num">${F.ms(r.p95_latency_ms)}</td>` +
        `<td class="num">${F.compact(r.total_tokens)}</td><td class="num">${F.usd(r.total_cost_usd)}</td></tr>`;
    }).join("");
    el.innerHTML = `<table class="table">${head}${body}</table>`;
  }

  // Merge the newest points into the series (replace a point still filling up, append new
  // ones, drop those that slid out of the window).
  function merge(points) {
    const s = state.series;
    const keys = ["calls", "errors", "error_rate", "cost", "p50", "p95", "p99", "cache_lookups", "cache_hit_rate"];
    points.t.forEach((t, i) => {
      let at = s.t.indexOf(t);
      if (at === -1) {
        s.t.push(t);
        keys.forEach((k) => s[k].push(points[k][i]));
      } else {
        keys.forEach((k) => { s[k][at] = points[k][i]; });
      }
    });
    const keep = s.t.length - initial.series.t.length;
    if (keep > 0) { s.t.splice(0, keep); keys.forEach((k) => s[k].splice(0, keep)); }
  }

  // --- the socket -------------------------------------------------------------------------------
  const indicator = document.getElementById("live-indicator");
  function setLive(mode, label) {
    indicator.className = `live live-${mode}`;
    indicator.querySelector(".live-label").textContent = label;
  }

  let socket = null;
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/metrics/?window=${encodeURIComponent(windowName)}`);
    socket.onopen = () => { delay = 1000; if (!state.paused) setLive("on", "Live"); };
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (state.paused) return;
      if (msg.type === "snapshot") {
        state.seq = msg.seq; state.series = msg.series; state.summary = msg.summary; state.panels = msg.panels;
        callers(msg.by_caller);
        draw();
        return;
      }
      if (msg.seq <= state.seq) return; // already included in what we drew
      if (msg.seq !== state.seq + 1) { // a message was lost: re-read the window
        state.seq = msg.seq;
        socket.send(JSON.stringify({ action: "resync" }));
        return;
      }
      state.seq = msg.seq;
      merge(msg.series);
      if (msg.summary) state.summary = msg.summary;
      if (msg.panels) state.panels = msg.panels;
      draw();
      window.aiosLastUpdate = msg; // for tests and curious operators
    };
    socket.onclose = (ev) => {
      if (ev.code === 4401 || ev.code === 4403) { setLive("paused", "Not allowed"); return; }
      setLive("reconnecting", "Reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }

  document.getElementById("pause-button").addEventListener("click", (ev) => {
    state.paused = !state.paused;
    ev.target.textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) { setLive("paused", "Paused"); return; }
    setLive("on", "Live");
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ action: "resync" }));
  });

  draw();
  callers(initial.by_caller);
  connect();
})();
