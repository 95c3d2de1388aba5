(function () {
  "use strict";
  var findings = document.getElementById("findings");
  var rows = Array.prototype.slice.call(findings.tBodies[0].rows);
  var text = document.getElementById("filter-text");
  var severity = document.getElementById("filter-severity");
  var count = document.getElementById("filter-count");

  function filter() {
    var query = text.value.trim().toLowerCase();
    var wanted = severity.value;
    var shown = 0;
    rows.forEach(function (row) {
      var match = (!wanted || row.dataset.severity === wanted) &&
        (!query || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " findings shown";
    document.body.dataset.visibleFindings = String(shown);
  }

  function sortKey(row, index) {
    var cell = row.cells[index];
    return cell ? (cell.dataset.sort || cell.textContent.trim()) : "";
  }

  function sort(header) {
    var table = header.closest("table");
    var body = table.tBodies[0];
    var index = header.cellIndex;
    var numeric = header.dataset.type === "number";
    var current = header.getAttribute("aria-sort");
    var direction = current ? (current === "ascending" ? -1 : 1) : (numeric ? -1 : 1);
    Array.prototype.forEach.call(header.parentNode.cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
    var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var left = sortKey(a, index), right = sortKey(b, index);
      var order = numeric ? Number(left) - Number(right) : left.localeCompare(right);
      return order * direction;
    });
    sorted.forEach(function (row) { body.appendChild(row); });
  }

  document.querySelectorAll("table.sortable thead th").forEach(function (header) {
    header.tabIndex = 0;
    header.addEventListener("click", function () { sort(header); });
    header.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(header); }
    });
  });

  var params = new URLSearchParams(window.location.search);
  text.value = params.get("q") || "";
  severity.value = params.get("severity") || "";
  text.addEventListener("input", filter);
  severity.addEventListener("change", filter);
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (details) { details.open = true; });
  });
  filter();
  document.body.dataset.ready = "true";
}());
