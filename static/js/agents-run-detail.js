// Run detail: when this run changes status, re-read the page (attempts, result and spans). After a
// reconnect (or as a safety net) ask the API whether the status moved while we were not listening.
(function () {
  "use strict";
  const live = JSON.parse(document.getElementById("run-live").textContent);
  if (!window.aiosRuns) return;
  const TERMINAL = new Set(["succeeded", "failed", "rejected", "expired", "cancelled", "dead_letter"]);
  let shown = live.status;

  function changed(status) {
    if (status === shown) return;
    shown = status;
    const pill = document.getElementById("run-status");
    pill.className = `pill pill-${status}`;
    pill.textContent = status;
    setTimeout(() => location.reload(), 600);
  }

  window.aiosRuns.onStatus((run) => { if (run.id === live.run) changed(run.status); });
  window.aiosRuns.onResync(() => {
    if (TERMINAL.has(shown)) return;
    fetch(`/api/runs/${live.run}`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((run) => changed(run.status))
      .catch(() => {});
  });
})();
