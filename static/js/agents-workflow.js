// Workflow detail: steps update live; a finished step (or a new one) re-reads the page. After a
// reconnect (or as a safety net) ask the API whether the workflow or a step moved meanwhile.
(function () {
  "use strict";
  const live = JSON.parse(document.getElementById("wf-live").textContent);
  if (!window.aiosRuns) return;
  let timer = null;

  function reloadSoon() {
    clearTimeout(timer);
    timer = setTimeout(() => location.reload(), 800);
  }

  function shownState() {
    const status = document.getElementById("wf-status").textContent.trim();
    const steps = Array.from(document.querySelectorAll("#wf-steps tbody tr")).map(
      (tr) => `${tr.dataset.run || ""}:${tr.querySelector(".pill").textContent.trim()}`);
    return [status, ...steps].join("|");
  }

  window.aiosRuns.onStatus((run) => {
    if (run.workflow !== live.workflow) return;
    const pill = document.querySelector(`tr[data-run="${run.id}"] [data-field="status"]`);
    if (pill) {
      pill.className = `pill pill-${run.status}`;
      pill.textContent = run.status;
    }
    reloadSoon();
  });
  window.aiosRuns.onResync(() => {
    fetch(`/api/workflows/${live.workflow}`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((wf) => {
        const state = [wf.status, ...wf.steps.map((s) => `${s.run_id || ""}:${s.status}`)].join("|");
        if (state !== shownState()) reloadSoon();
      })
      .catch(() => {});
  });
})();
