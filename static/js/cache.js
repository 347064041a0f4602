// Cache page: hits and misses per minute.
(function () {
  const s = JSON.parse(document.getElementById("cache-series").textContent);
  const el = document.getElementById("chart-cache");
  if (!s.t.length) { el.classList.add("chart-empty"); el.innerHTML = '<p class="muted">No lookups yet.</p>'; return; }
  const x = s.t.map((t) => new Date(t));
  Plotly.newPlot(el, [
    { x, y: s.hits, name: "Hits", type: "bar", marker: { color: "#34d399" } },
    { x, y: s.misses, name: "Misses", type: "bar", marker: { color: "#cbd5e1" } },
  ], { barmode: "stack", margin: { l: 45, r: 20, t: 10, b: 36 }, height: 260, legend: { orientation: "h", y: -0.22 },
       paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)" }, { displayModeBar: false, responsive: true });
})();
