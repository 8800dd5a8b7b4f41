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

  var sorted = window.sfTable(table, bodies, toggle), value = sorted.value;
  Object.keys(controls).forEach(function (k) {
    controls[k].addEventListener(k === "search" || k === "wape" ? "input" : "change", applyFilters);
  });
  applyFilters();
  window.sfReport = { sortBy: sorted.sortBy, applyFilters: applyFilters, toggle: toggle };
})();
