// Cache page: hits, misses and hit rate per minute; USD and time saved over time; the totals.
// Polls stats.json every 5 s for the window and namespace in the URL.
(function () {
  "use strict";
  const F = window.aiosFormat;
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams({ window: params.get("window") || "24h", ns: params.get("ns") || "" });
  const lookups = document.getElementById("chart-cache");
  const saved = document.getElementById("chart-saved");
  const layout = { margin: { l: 50, r: 55, t: 10, b: 36 }, height: 260, legend: { orientation: "h", y: -0.22 },
                   paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "x unified" };
  const config = { displayModeBar: false, responsive: true };

  function empty(el, s) {
    if (!s.t.length) { el.classList.add("chart-empty"); el.innerHTML = '<p class="muted">No lookups yet.</p>'; return true; }
    if (el.classList.contains("chart-empty")) { el.classList.remove("chart-empty"); el.innerHTML = ""; }
    return false;
  }

  function cumulative(values) { let total = 0; return values.map((v) => (total += v)); }

  function draw(s) {
    const none = [empty(lookups, s), empty(saved, s)];
    if (none[0] || none[1]) return;
    const x = s.t.map((t) => new Date(t));
    Plotly.react(lookups, [
      { x, y: s.hits, name: "Hits", type: "bar", marker: { color: "#34d399" } },
      { x, y: s.misses, name: "Misses", type: "bar", marker: { color: "#cbd5e1" } },
      { x, y: s.hit_rate, name: "Hit rate", mode: "lines", yaxis: "y2", line: { color: "#2563eb" } },
    ], { ...layout, barmode: "stack", yaxis: { title: { text: "lookups / min" }, rangemode: "tozero" },
         yaxis2: { overlaying: "y", side: "right", range: [0, 1], tickformat: ".0%" } }, config);
    Plotly.react(saved, [
      { x, y: cumulative(s.saved_usd), name: "USD saved", mode: "lines", line: { color: "#059669" } },
      { x, y: cumulative(s.saved_ms).map((v) => v / 1000), name: "Time saved (s)", mode: "lines", yaxis: "y2",
        line: { color: "#7c3aed", dash: "dot" } },
    ], { ...layout, yaxis: { title: { text: "USD (cumulative)" }, rangemode: "tozero" },
         yaxis2: { overlaying: "y", side: "right", title: { text: "seconds" }, rangemode: "tozero" } }, config);
  }

  function summary(s) {
    document.getElementById("hit-rate").textContent = s.hit_rate === null ? "–" : F.pct(s.hit_rate);
    document.getElementById("hits").textContent = `${F.int(s.hits + s.semantic_hits)} (${F.int(s.semantic_hits)})`;
    document.getElementById("misses").textContent = F.int(s.misses);
    document.getElementById("saved-usd").textContent = F.usd(s.saved_usd);
    document.getElementById("saved-ms").textContent = F.ms(s.saved_ms);
  }

  function refresh() {
    fetch(`stats.json?${query}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((stats) => { draw(stats.series); summary(stats.summary); })
      .catch(() => {});
  }

  // Choosing a namespace shows it at once (the Show button is for pages without scripts).
  const select = document.getElementById("namespace-select");
  select.addEventListener("change", () => select.form.submit());
  document.getElementById("namespace-show").hidden = true;

  draw(JSON.parse(document.getElementById("cache-series").textContent));
  setInterval(refresh, 5000);
})();
