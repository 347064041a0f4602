// Shared by the agent pages: one websocket to /ws/runs/, reconnecting with capped backoff.
// Pages register a handler through window.aiosRuns.onStatus(fn); events carry a run summary.
(function () {
  "use strict";
  const handlers = [];
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/runs/`);
    ws.onopen = () => { delay = 1000; };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "run.status") handlers.forEach((fn) => fn(msg.run));
    };
    ws.onclose = (ev) => {
      if (ev.code === 4401 || ev.code === 4403) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  window.aiosRuns = { onStatus: (fn) => handlers.push(fn) };
  connect();
})();
