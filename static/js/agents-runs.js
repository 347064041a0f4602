// Runs list: update rows in place as runs change status; add new runs that match the filters;
// re-read the rows from the server after a reconnect (see agents-live.js).
(function () {
  "use strict";
  const filter = JSON.parse(document.getElementById("runs-live-filter").textContent);
  const table = document.getElementById("runs-table");
  if (!table || !window.aiosRuns) return;
  const body = table.querySelector("tbody");

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function newRow(run) {
    const tr = document.createElement("tr");
    tr.dataset.run = run.id;
    const link = document.createElement("a");
    link.href = `/runs/${run.id}/`;
    const code = document.createElement("code");
    code.textContent = run.id.slice(0, 8);
    link.appendChild(code);
    const first = document.createElement("td");
    first.appendChild(link);
    const status = document.createElement("td");
    const pill = document.createElement("span");
    pill.dataset.field = "status";
    status.appendChild(pill);
    const created = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = new Date().toISOString();
    time.textContent = window.aiosFormat ? window.aiosFormat.time(time.dateTime) : "now";
    created.appendChild(time);
    tr.append(first, cell(`${run.agent}.${run.action}`), status, cell("", "num"), cell("", "muted small"), cell(""), created);
    tr.children[3].dataset.field = "attempt";
    tr.children[4].dataset.field = "message";
    return tr;
  }

  // Re-read the rows this page shows (same filters and page) from the database.
  function resync() {
    const url = new URL(location.href);
    url.searchParams.set("partial", "1");
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        body.innerHTML = html;
        if (window.aiosFormat) window.aiosFormat.localizeTimes(body);
        const rows = body.querySelectorAll("tr").length;
        const empty = document.getElementById("runs-empty");
        const live = document.getElementById("runs-live");
        if (empty) empty.hidden = rows > 0;
        if (live) live.hidden = rows === 0;
      })
      .catch((e) => console.warn("runs resync failed", e));
  }
  window.aiosRuns.onResync(resync);

  function update(tr, run) {
    const pill = tr.querySelector('[data-field="status"]');
    pill.className = `pill pill-${run.status}`;
    pill.textContent = run.status;
    const attempt = tr.querySelector('[data-field="attempt"]');
    if (attempt) attempt.textContent = `${run.attempt}`;
    const message = tr.querySelector('[data-field="message"]');
    if (message) message.textContent = run.message || "";
    tr.classList.remove("flash-row");
    void tr.offsetWidth;
    tr.classList.add("flash-row");
  }

  window.aiosRuns.onStatus((run) => {
    let tr = body.querySelector(`tr[data-run="${run.id}"]`);
    if (!tr) {
      if ((filter.status && filter.status !== run.status) || (filter.agent && filter.agent !== run.agent)) return;
      tr = newRow(run);
      body.prepend(tr);
      const empty = document.getElementById("runs-empty");
      const live = document.getElementById("runs-live");
      if (empty) empty.hidden = true;
      if (live) live.hidden = false;
    }
    update(tr, run);
  });
})();
