// Routing page: estimated cost against the all-baseline cost over time.
(function () {
  "use strict";
  const s = JSON.parse(document.getElementById("savings-series").textContent);
  const el = document.getElementById("chart-savings");
  if (!s.t.length) { el.classList.add("chart-empty"); el.innerHTML = '<p class="muted">No decisions in this window.</p>'; return; }
  const x = s.t.map((t) => new Date(t));
  const cum = (v) => { let r = 0; return v.map((y) => (r += y)); };
  Plotly.newPlot(el, [
    { x, y: cum(s.baseline), name: "All baseline", mode: "lines", line: { color: "#dc2626", dash: "dot" } },
    { x, y: cum(s.cost), name: "Routed", mode: "lines", line: { color: "#059669" }, fill: "tonexty", fillcolor: "rgba(5,150,105,.08)" },
  ], { margin: { l: 55, r: 20, t: 10, b: 36 }, height: 260, legend: { orientation: "h", y: -0.22 },
       yaxis: { title: { text: "USD (cumulative)" }, rangemode: "tozero" }, paper_bgcolor: "rgba(0,0,0,0)",
       plot_bgcolor: "rgba(0,0,0,0)", hovermode: "x unified" }, { displayModeBar: false, responsive: true });
})();
