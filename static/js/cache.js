// Cache page: hits and misses per minute, and the totals, refreshed every 5 s.
(function () {
  "use strict";
  const F = window.aiosFormat;
  const el = document.getElementById("chart-cache");
  const windowName = new URLSearchParams(location.search).get("window") || "24h";

  function draw(s) {
    if (!s.t.length) { el.classList.add("chart-empty"); el.innerHTML = '<p class="muted">No lookups yet.</p>'; return; }
    if (el.classList.contains("chart-empty")) { el.classList.remove("chart-empty"); el.innerHTML = ""; }
    const x = s.t.map((t) => new Date(t));
    Plotly.react(el, [
      { x, y: s.hits, name: "Hits", type: "bar", marker: { color: "#34d399" } },
      { x, y: s.misses, name: "Misses", type: "bar", marker: { color: "#cbd5e1" } },
    ], { barmode: "stack", margin: { l: 45, r: 20, t: 10, b: 36 }, height: 260, legend: { orientation: "h", y: -0.22 },
         paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)" }, { displayModeBar: false, responsive: true });
  }

  function refresh() {
    fetch(`stats.json?window=${encodeURIComponent(windowName)}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((stats) => {
        draw(stats.series);
        const rate = stats.summary.hit_rate;
        document.getElementById("hit-rate").textContent = rate === null ? "–" : F.pct(rate);
      })
      .catch(() => {});
  }

  draw(JSON.parse(document.getElementById("cache-series").textContent));
  setInterval(refresh, 5000);
})();
