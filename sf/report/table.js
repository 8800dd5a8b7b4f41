// sf report: one sortable table of products (a tbody each): header buttons sort it, a summary row opens its detail.
// Shared by the product browser (page.js) and the new products' forecasts (forecasts.js).
window.sfTable = function (table, bodies, toggle) {
  "use strict";

  function value(tbody, key, type) {
    var raw = tbody.dataset[key];
    if (type === "num") {
      var x = parseFloat(raw);
      return isNaN(x) ? null : x;
    }
    return (raw || "").toLowerCase();
  }

  function sortBy(th) {
    var key = th.dataset.key, type = th.dataset.type;
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    bodies.sort(function (a, b) {
      var va = value(a, key, type), vb = value(b, key, type);
      if (va === null && vb === null) { return 0; }
      if (va === null) { return 1; }  // unknown values last, whatever the direction
      if (vb === null) { return -1; }
      if (va < vb) { return -sign; }
      if (va > vb) { return sign; }
      return 0;
    });
    bodies.forEach(function (b) { table.appendChild(b); });
  }

  table.querySelectorAll("th.sortable").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  bodies.forEach(function (b) {
    var row = b.querySelector("tr.summary");
    row.addEventListener("click", function () { toggle(b); });
    row.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(b); } });
  });
  return { sortBy: sortBy, value: value };
};
