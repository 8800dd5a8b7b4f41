// sf report, new products: sort the forecast table (header buttons: mouse or keyboard) and draw a product's
// weekly forecast when its row is opened (the page carries only the numbers, not one SVG per product).
(function () {
  "use strict";
  var table = document.getElementById("forecast-table");
  if (!table) { return; }
  var bodies = Array.prototype.slice.call(table.querySelectorAll("tbody.forecast"));
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function niceStep(top) {
    var raw = top / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * mag >= raw) { return steps[i] * mag; } }
    return 10 * mag;
  }

  function weekLabel(start, i) {
    if (!start) { return String(i + 1); }
    var d = new Date(start + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 7 * i);
    return d.toISOString().slice(0, 10);
  }

  function chart(b) {
    var y = b.dataset.weeks.split(" ").map(parseFloat);
    var band = b.dataset.band ? b.dataset.band.split(";").map(function (p) { return p.split(" ").map(parseFloat); }) : null;
    var start = b.dataset.start, n = y.length;
    var W = 460, H = 230, L = 52, R = 12, T = 22, B = 48;
    var top = Math.max.apply(null, y.concat(band ? band.map(function (p) { return p[1]; }) : [1]));
    var step = niceStep(top > 0 ? top : 1), ymax = Math.ceil(top / step) * step || 1;
    var sx = (W - L - R) / Math.max(n - 1, 1), sy = (H - T - B) / ymax;
    function px(i) { return L + i * sx; }
    function py(v) { return H - B - v * sy; }
    var svg = el("svg", {"class": "chart forecast", role: "img", viewBox: "0 0 " + W + " " + H, width: W, height: H});
    svg.appendChild(el("title", {}, b.dataset.id + ": weekly forecast"));
    svg.appendChild(el("text", {x: L, y: 14, "class": "chart-title"}, b.dataset.id + ": forecast per week, units"));
    for (var v = 0; v <= ymax + 1e-9; v += step) {
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: py(v), y2: py(v), stroke: "#dee2e6"}));
      svg.appendChild(el("text", {x: L - 4, y: py(v) + 4, "text-anchor": "end", "class": "tick"}, String(+v.toFixed(1))));
    }
    var every = Math.max(1, Math.ceil(n / 4));
    for (var i = 0; i < n; i += every) {
      svg.appendChild(el("text", {x: px(i), y: H - B + 14, "text-anchor": "middle", "class": "tick"}, weekLabel(start, i)));
    }
    svg.appendChild(el("text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "class": "axis-label"},
      start ? "week starting (date)" : "week since release (release date unknown)"));
    svg.appendChild(el("text", {x: 12, y: (T + H - B) / 2, "text-anchor": "middle", "class": "axis-label",
      transform: "rotate(-90 12 " + (T + H - B) / 2 + ")"}, "units per week"));
    if (band) {
      var pts = band.map(function (p, j) { return px(j) + "," + py(p[1]); });
      for (var k = band.length - 1; k >= 0; k--) { pts.push(px(k) + "," + py(band[k][0])); }
      svg.appendChild(el("polygon", {points: pts.join(" "), fill: "#ffa94d", opacity: 0.35, "class": "band"}));
    }
    svg.appendChild(el("polyline", {"class": "model", points: y.map(function (v, j) { return px(j) + "," + py(v); }).join(" ")}));
    return svg;
  }

  function toggle(b) {
    var detail = b.querySelector("tr.detail");
    if (detail.hidden && !detail.querySelector("svg")) {
      var cell = detail.querySelector("td");
      cell.appendChild(chart(b));
      var p = document.createElement("p");
      p.className = "note";
      p.textContent = "total " + b.dataset.total + " units (p10 " + b.dataset.lo + ", p90 " + b.dataset.hi +
        "); order " + b.dataset.order + " units" + (b.dataset.band ? "; band: the weekly p10–p90" : "");
      cell.appendChild(p);
    }
    detail.hidden = !detail.hidden;
    b.classList.toggle("open", !detail.hidden);
  }

  var sorted = window.sfTable(table, bodies, toggle);
  window.sfForecasts = { sortBy: sorted.sortBy, toggle: toggle };
})();
