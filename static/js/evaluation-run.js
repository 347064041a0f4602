// Eval run page: keep the progress tiles current until the run finishes. Listens on the run's websocket
// (eval.progress events) when the route is mounted, and polls the progress endpoint: every 5 s as a safety net
// while the socket is open (the channel layer is at-most-once), every second otherwise.
(function () {
  "use strict";
  const box = document.getElementById("run-progress");
  const urlHolder = document.getElementById("run-progress-url");
  const dataTag = document.getElementById("run-progress-data");
  if (!box || !urlHolder || !dataTag) return;
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  let last = JSON.parse(dataTag.textContent);

  function draw(p) {
    box.querySelectorAll("[data-field]").forEach((el) => {
      const key = el.dataset.field;
      if (key === "percent") { el.value = p.percent; return; }
      if (key === "status") el.className = "pill pill-" + p.status;
      el.textContent = key === "cost_usd" ? Number(p.cost_usd).toFixed(6) : String(p[key]);
    });
  }

  let socketOpen = false;
  function listen() {
    const proto = window.location.protocol === "https:" ? "wss://" : "ws://";
    const runId = JSON.parse(dataTag.textContent).run;
    try {
      const ws = new WebSocket(proto + window.location.host + "/ws/evaluation/runs/" + runId + "/");
      ws.onopen = () => { socketOpen = true; };
      ws.onclose = () => { socketOpen = false; };
      ws.onmessage = (msg) => {
        const data = JSON.parse(msg.data);
        if (data.type !== "eval.progress") return;
        draw(data.progress);
        if (FINISHED.has(data.progress.status)) window.location.reload();
      };
    } catch (err) { /* no websocket: polling alone */ }
  }

  async function poll() {
    try {
      const resp = await fetch(urlHolder.dataset.url, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const p = await resp.json();
        draw(p);
        if (FINISHED.has(p.status) && !FINISHED.has(last.status)) { window.location.reload(); return; }
        last = p;
      }
    } catch (err) { /* offline for a moment: try again */ }
    if (!FINISHED.has(last.status)) setTimeout(poll, socketOpen ? 5000 : 1000);
  }

  if (!FINISHED.has(last.status)) { listen(); setTimeout(poll, 1000); }
})();
