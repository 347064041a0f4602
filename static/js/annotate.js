// Annotation review: work an item with the keyboard alone.
// 1-9 pick a value for the current score (numeric: the number itself; categorical / boolean: the nth
// option) and move to the next score; ArrowUp / ArrowDown change the current score; "s" skips;
// Enter submits and claims the next item. In the comment box keys type text: Ctrl+Enter submits, Esc leaves.
(function () {
  "use strict";
  const form = document.getElementById("review-form");
  const skipForm = document.getElementById("skip-form");
  if (!form) return;
  const fields = Array.from(form.querySelectorAll("fieldset.score"));
  let current = 0;

  function highlight() {
    fields.forEach((f, i) => f.classList.toggle("score-current", i === current));
    fields.forEach((f, i) => { f.style.outline = i === current ? "2px solid var(--brand-2)" : ""; });
  }

  function pick(field, digit) {
    if (field.dataset.kind === "numeric") {
      const input = field.querySelector("input");
      const value = Number(digit);
      if (value < Number(input.dataset.min) || value > Number(input.dataset.max)) return false;
      input.value = String(value);
      return true;
    }
    const option = field.querySelectorAll("input[type=radio]")[Number(digit) - 1];
    if (!option) return false;
    option.checked = true;
    return true;
  }

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "number"));
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey) return;
    const inText = event.target.tagName === "TEXTAREA";
    if (inText) {
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); form.requestSubmit(); }
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey) return;
    if (/^[0-9]$/.test(event.key) && fields.length) {
      if (typing(event.target)) event.target.blur();
      event.preventDefault();
      if (pick(fields[current], event.key) && current < fields.length - 1) current += 1;
      highlight();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      current = Math.max(0, Math.min(fields.length - 1, current + (event.key === "ArrowDown" ? 1 : -1)));
      highlight();
    } else if (event.key === "s" && skipForm) {
      event.preventDefault();
      skipForm.requestSubmit();
    } else if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  fields.forEach((f, i) => f.addEventListener("click", () => { current = i; highlight(); }));
  highlight();
})();
