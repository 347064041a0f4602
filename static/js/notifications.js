// Live notifications for every logged-in page: toasts and live counters, over one websocket.
// Reconnects with exponential backoff (capped) after a server restart.
(function () {
  "use strict";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws/notifications/`;
  let delay = 1000;

  function toast(text, href) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = "toast";
    el.textContent = text + " ";
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = "Open";
      el.appendChild(a);
    }
    box.appendChild(el);
    setTimeout(() => el.remove(), 8000);
  }

  function show(badge, value) {
    badge.textContent = value ? value : "";
    badge.hidden = !value;
  }

  // Counts that differ per person (the approvals badge) are re-read from the server: messages
  // name them in `recount`; every badge is re-read after a reconnect (messages may have been lost).
  function recount(badge) {
    if (!badge || !badge.dataset.countUrl) return;
    const name = badge.id.replace(/^nav-/, "").replace(/-count$/, "");
    fetch(badge.dataset.countUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((counts) => { if (name in counts) show(badge, counts[name]); })
      .catch(() => {});
  }

  function handle(msg) {
    if (msg.toast) toast(msg.toast, msg.href);
    if (msg.counts) {
      for (const [name, value] of Object.entries(msg.counts)) {
        const badge = document.getElementById(`nav-${name}-count`);
        if (badge) show(badge, value);
      }
    }
    (msg.recount || []).forEach((name) => recount(document.getElementById(`nav-${name}-count`)));
    document.dispatchEvent(new CustomEvent("aios:notification", { detail: msg }));
  }

  let opened = false;
  function connect() {
    const ws = new WebSocket(url);
    ws.onopen = () => {
      delay = 1000;
      if (opened) document.querySelectorAll(".badge[data-count-url]").forEach(recount);
      opened = true;
    };
    ws.onmessage = (ev) => { try { handle(JSON.parse(ev.data)); } catch (e) { console.warn("bad notification", e); } };
    ws.onclose = (ev) => {
      if (ev.code === 4401 || ev.code === 4403) return; // logged out or not allowed: don't hammer
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
