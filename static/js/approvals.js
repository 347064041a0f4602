// The approvals queue: re-read the list from the server when an approval notification arrives
// (notifications.js dispatches `aios:notification`). The channel is at-most-once, so the page
// also re-reads every 30 s.
(function () {
  "use strict";
  const box = document.getElementById("approvals-list");
  if (!box) return;
  let pending = null;

  function reload() {
    const url = new URL(location.href);
    url.searchParams.set("partial", "1");
    fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        box.innerHTML = html;
        if (window.aiosFormat) window.aiosFormat.localizeTimes(box);
      })
      .catch((e) => console.warn("approvals reload failed", e));
  }

  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 150);
  }

  document.addEventListener("aios:notification", (ev) => {
    if (ev.detail && (ev.detail.approval || (ev.detail.recount || []).includes("approvals"))) soon();
  });
  setInterval(reload, 30000);
})();
