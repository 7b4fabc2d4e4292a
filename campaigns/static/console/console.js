// Progressive enhancement of the console's forms; every control works without it.
(function () {
  "use strict";

  // A search box above each long multi-select: typing hides the options that do not match.
  function filterable(select) {
    var box = document.createElement("input");
    box.type = "search";
    box.className = "filter-box";
    box.placeholder = "Type to filter";
    box.setAttribute("aria-label", "Filter " + (select.labels[0] ? select.labels[0].textContent : "options"));
    box.addEventListener("input", function () {
      var needle = box.value.trim().toLowerCase();
      Array.prototype.forEach.call(select.options, function (option) {
        option.hidden = needle !== "" && !option.selected && option.text.toLowerCase().indexOf(needle) === -1;
      });
    });
    select.parentNode.insertBefore(box, select);
  }

  // The region list follows the chosen countries (the server knows each country's regions).
  function regionsFollowCountries() {
    var countries = document.getElementById("id_countries");
    var holder = document.querySelector("[data-regions-url]");
    var regions = document.getElementById("id_regions");
    if (!countries || !holder || !regions) return;
    countries.addEventListener("change", function () {
      var chosen = Array.prototype.filter.call(countries.options, function (o) { return o.selected; })
        .map(function (o) { return "country=" + encodeURIComponent(o.value); });
      var kept = {};
      Array.prototype.forEach.call(regions.options, function (o) { if (o.selected) kept[o.value] = true; });
      fetch(holder.dataset.regionsUrl + "?" + chosen.join("&"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          regions.innerHTML = "";
          data.regions.forEach(function (pair) {
            var option = new Option(pair[1], pair[0], false, !!kept[pair[0]]);
            regions.add(option);
          });
        });
    });
  }

  // The week grid: a click on a day or an hour heading ticks (or clears) its whole row or column.
  function weekGrid(table) {
    function toggle(boxes) {
      var on = boxes.some(function (b) { return !b.checked; });
      boxes.forEach(function (b) { b.checked = on; });
    }
    table.querySelectorAll("tbody th").forEach(function (th) {
      th.style.cursor = "pointer";
      th.addEventListener("click", function () {
        toggle(Array.prototype.slice.call(th.parentNode.querySelectorAll("input")));
      });
    });
    table.querySelectorAll("thead th").forEach(function (th, column) {
      if (column === 0) return;
      th.style.cursor = "pointer";
      th.addEventListener("click", function () {
        var boxes = [];
        table.querySelectorAll("tbody tr").forEach(function (row) { boxes.push(row.cells[column].querySelector("input")); });
        toggle(boxes);
      });
    });
  }

  document.querySelectorAll("select[data-filterable]").forEach(filterable);
  document.querySelectorAll("[data-daypart-grid]").forEach(weekGrid);
  regionsFollowCountries();
})();
