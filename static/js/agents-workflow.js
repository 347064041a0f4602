// Workflow detail: steps update live; a finished step (or a new one) re-reads the page.
(function () {
  "use strict";
  const live = JSON.parse(document.getElementById("wf-live").textContent);
  if (!window.aiosRuns) return;
  let timer = null;
  window.aiosRuns.onStatus((run) => {
    if (run.workflow !== live.workflow) return;
    const pill = document.querySelector(`tr[data-run="${run.id}"] [data-field="status"]`);
    if (pill) {
      pill.className = `pill pill-${run.status}`;
      pill.textContent = run.status;
    }
    clearTimeout(timer);
    timer = setTimeout(() => location.reload(), 800);
  });
})();
