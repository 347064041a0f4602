// Run detail: when this run changes status, re-read the page (attempts, result and spans).
(function () {
  "use strict";
  const live = JSON.parse(document.getElementById("run-live").textContent);
  if (!window.aiosRuns) return;
  let shown = live.status;
  window.aiosRuns.onStatus((run) => {
    if (run.id !== live.run || run.status === shown) return;
    shown = run.status;
    const pill = document.getElementById("run-status");
    pill.className = `pill pill-${run.status}`;
    pill.textContent = run.status;
    setTimeout(() => location.reload(), 600);
  });
})();
