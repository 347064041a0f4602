// Number and time formatting shared by every page (viewer's locale and time zone).
window.aiosFormat = (function () {
  "use strict";
  const nf = new Intl.NumberFormat(undefined);
  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 10000) return (v / 1000).toFixed(1) + " s";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 10) return Math.round(v) + " ms";
    return v.toFixed(v >= 1 ? 1 : 2) + " ms";
  }
  function usd(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "$0";
    if (Math.abs(v) >= 100) return "$" + nf.format(Math.round(v));
    if (Math.abs(v) >= 1) return "$" + v.toFixed(2);
    if (Math.abs(v) >= 0.01) return "$" + v.toFixed(3);
    if (Math.abs(v) < 0.000001) return "<$0.000001";
    return "$" + v.toFixed(6).replace(/0+$/, "");
  }
  function pct(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "0%";
    if (v < 0.001) return "<0.1%";
    return (v * 100).toFixed(v < 0.1 ? 1 : 0) + "%";
  }
  function int(v) { return v === null || v === undefined ? "–" : nf.format(v); }
  function compact(v) {
    if (v === null || v === undefined) return "–";
    return new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }).format(v);
  }
  function time(iso) {
    return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) : "–";
  }
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      if (!el.dataset.raw) el.textContent = time(el.getAttribute("datetime"));
    });
  }
  document.addEventListener("DOMContentLoaded", () => localizeTimes());
  return { ms, usd, pct, int, compact, time, localizeTimes };
})();
