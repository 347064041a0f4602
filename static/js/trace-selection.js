// Traces explorer and trace page: count the selected spans / traces, "select all", and keep the
// "Add to …" buttons off until something is selected. Without JavaScript the buttons still post
// (the server says when nothing was selected).
(function () {
  "use strict";
  const bar = document.querySelector("[data-selection]");
  if (!bar) return;
  const boxes = () => Array.from(document.querySelectorAll('input[form="trace-selection"], [data-selection] input[data-selectable]'));
  const count = bar.querySelector("[data-selection-count]");
  const buttons = bar.querySelectorAll("[data-needs-selection]");
  const all = document.querySelector("[data-select-all]");

  function sync() {
    const checked = boxes().filter((b) => b.checked).length;
    if (count) count.textContent = String(checked);
    buttons.forEach((b) => { b.disabled = checked === 0; });
    if (all) {
      const rows = boxes().filter((b) => b.getAttribute("form") === "trace-selection");
      all.checked = rows.length > 0 && rows.every((b) => b.checked);
      all.indeterminate = checked > 0 && !all.checked;
    }
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target === all) {
      boxes().filter((b) => b.getAttribute("form") === "trace-selection").forEach((b) => { b.checked = all.checked; });
    }
    sync();
  });
  // A checkbox inside a span's <summary> must not open or close the span's details.
  document.querySelectorAll('summary input[form="trace-selection"]').forEach((box) => {
    box.addEventListener("click", (event) => event.stopPropagation());
  });
  sync();
})();
