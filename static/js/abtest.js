// A/B test page: the metric per variant over time; while the test runs, the results refresh every 5 s.
(function () {
  "use strict";
  const root = document.getElementById("abtest-results");
  const colors = ["#2563eb", "#059669"];

  function draw() {
    const el = document.getElementById("abtest-chart");
    const data = JSON.parse(document.getElementById("abtest-chart-data").textContent);
    if (!data.series.some((s) => s.t.length)) {
      el.classList.add("chart-empty");
      el.innerHTML = '<p class="muted">No observations yet.</p>';
      return;
    }
    const traces = data.series.map((s, i) => ({
      x: s.t.map((t) => new Date(t)), y: s.y, customdata: s.n, name: s.name, mode: "lines",
      line: { color: colors[i % colors.length], shape: "hv" },
      hovertemplate: "%{y:.4g} after %{customdata} observations<extra>" + s.name + "</extra>",
    }));
    Plotly.react(el, traces, {
      margin: { l: 55, r: 20, t: 10, b: 36 }, height: 260, legend: { orientation: "h", y: -0.22 },
      yaxis: { title: { text: data.metric + (data.unit ? " (" + data.unit + ")" : "") } },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "x unified",
    }, { displayModeBar: false, responsive: true });
  }

  async function refresh() {
    try {
      const resp = await fetch(root.dataset.url, { headers: { "X-Requested-With": "fetch" } });
      if (!resp.ok) return;
      root.innerHTML = await resp.text();
      // Decided or stopped: reload once, so the header and the buttons say so too.
      if (document.getElementById("abtest-state").dataset.status !== "running") { window.location.reload(); return; }
      draw();
      setTimeout(refresh, 5000);
    } catch (e) {
      setTimeout(refresh, 10000);
    }
  }

  draw();
  if (root.dataset.running) setTimeout(refresh, 5000);
})();
