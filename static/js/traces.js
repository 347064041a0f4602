// Traces explorer: show the custom range inputs only when "Custom" is chosen; local times.
(function () {
  "use strict";
  const range = document.querySelector("#trace-filters select[name=range]");
  const custom = document.querySelectorAll("#trace-filters .custom-range");
  function sync() { custom.forEach((el) => { el.hidden = range.value !== "custom"; }); }
  if (range) { range.addEventListener("change", sync); sync(); }
  // The custom range is typed in the viewer's time zone: tell the server which one.
  const tz = document.querySelector("#trace-filters input[name=tz]");
  if (tz) tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
})();
