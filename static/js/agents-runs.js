// Runs list: update rows in place as runs change status; add new runs that match the filters.
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
    tr.append(first, cell(`${run.agent}.${run.action}`), status, cell("", "num"), cell("", "muted small"), cell(""), cell("now"));
    tr.children[3].dataset.field = "attempt";
    tr.children[4].dataset.field = "message";
    return tr;
  }

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
