// sf report: sort, filter and open products. No network, no library: the table is already in the page.
(function () {
  "use strict";
  var table = document.getElementById("product-table");
  if (!table) { return; }
  var bodies = Array.prototype.slice.call(table.querySelectorAll("tbody.product"));
  var count = document.getElementById("f-count");
  var controls = {
    search: document.getElementById("f-search"),
    category: document.getElementById("f-category"),
    split: document.getElementById("f-split"),
    wape: document.getElementById("f-wape"),
    image: document.getElementById("f-image")
  };

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

  function applyFilters() {
    var q = (controls.search.value || "").trim().toLowerCase();
    var cat = controls.category.value, split = controls.split.value;
    var minWape = parseFloat(controls.wape.value);
    var shown = 0;
    bodies.forEach(function (b) {
      var ok = (!q || b.dataset.search.indexOf(q) >= 0) &&
        (!cat || b.dataset.category === cat) &&
        (!split || b.dataset.split === split) &&
        (isNaN(minWape) || (value(b, "wape", "num") !== null && value(b, "wape", "num") >= minWape)) &&
        (!controls.image.checked || b.dataset.image === "1");
      b.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + bodies.length + " products shown";
  }

  function toggle(tbody) {
    var detail = tbody.querySelector("tr.detail");
    detail.hidden = !detail.hidden;
    tbody.classList.toggle("open", !detail.hidden);
  }

  table.querySelectorAll("th.sortable").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  bodies.forEach(function (b) {
    var row = b.querySelector("tr.summary");
    row.addEventListener("click", function () { toggle(b); });
    row.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(b); } });
  });
  Object.keys(controls).forEach(function (k) {
    controls[k].addEventListener(k === "search" || k === "wape" ? "input" : "change", applyFilters);
  });
  applyFilters();
  window.sfReport = { sortBy: sortBy, applyFilters: applyFilters, toggle: toggle };
})();
