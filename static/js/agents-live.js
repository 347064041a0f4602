// Shared by the agent pages: one websocket to /ws/runs/, reconnecting with capped backoff.
// Pages register handlers: window.aiosRuns.onStatus(fn) gets each run summary as it changes;
// window.aiosRuns.onResync(fn) is called when the page must re-read the database instead: after
// a reconnect (events sent while the socket was down are gone) and every 30 s while the page is
// visible (the channel layer is at-most-once, so a message can be lost without a reconnect;
// events are coalesced per run, not sequenced, so there is no gap to detect).
(function () {
  "use strict";
  const statusHandlers = [];
  const resyncHandlers = [];
  const SAFETY_NET_MS = 30000;
  let delay = 1000;
  let opened = false;

  function resync() { resyncHandlers.forEach((fn) => fn()); }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/runs/`);
    ws.onopen = () => {
      delay = 1000;
      if (opened) resync();
      opened = true;
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "run.status") statusHandlers.forEach((fn) => fn(msg.run));
    };
    ws.onclose = (ev) => {
      if (ev.code === 4401 || ev.code === 4403) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  setInterval(() => { if (document.visibilityState === "visible") resync(); }, SAFETY_NET_MS);
  window.aiosRuns = {
    onStatus: (fn) => statusHandlers.push(fn),
    onResync: (fn) => resyncHandlers.push(fn),
    resync,
  };
  connect();
})();
