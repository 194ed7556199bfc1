// The live-sessions screen: refresh the rows from the JSON endpoint every few seconds
// (no reload), the reservations table too, and ask before a stop is sent to a pile. Cells
// are set as text, never HTML.
(function () {
  "use strict";
  function csrfToken() {
    var input = document.querySelector("#live-csrf input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function confirmStops(table) {
    table.querySelectorAll("form.live-stop").forEach(function (form) {
      if (form.dataset.bound) { return; }
      form.dataset.bound = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(table.dataset.confirm)) { event.preventDefault(); }
      });
    });
  }
  function stopCell(table, url) {
    var td = document.createElement("td");
    var form = document.createElement("form");
    form.method = "post";
    form.action = url;
    form.className = "live-stop";
    [["csrfmiddlewaretoken", csrfToken()], ["next", table.dataset.next]].forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = table.dataset.stopLabel;
    form.appendChild(button);
    td.appendChild(form);
    return td;
  }
  function textRow(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    });
    return tr;
  }
  function render(table, data) {
    var body = table.tBodies[0];
    var rows = document.createDocumentFragment();
    data.rows.forEach(function (row) {
      var tr = textRow(row.cells);
      tr.dataset.session = row.id;
      if (row.stop_url) { tr.appendChild(stopCell(table, row.stop_url)); }
      rows.appendChild(tr);
    });
    if (data.rows.length) {
      body.replaceChildren(rows);
    } else if (!body.querySelector(".live-empty")) {
      body.replaceChildren();
    }
    var held = document.getElementById("live-reservations");
    if (held && data.reservations) { renderReservations(held, data.reservations); }
    var updated = document.getElementById("live-updated");
    if (updated) { updated.textContent = data.at; }
    confirmStops(table);
  }
  function renderReservations(table, reservations) {
    var body = table.tBodies[0];
    var rows = document.createDocumentFragment();
    reservations.forEach(function (row) {
      var tr = textRow(row.cells);
      tr.dataset.reservation = row.id;
      rows.appendChild(tr);
    });
    if (reservations.length) {
      body.replaceChildren(rows);
    } else if (!body.querySelector(".live-empty")) {
      body.replaceChildren();
    }
  }
  function start() {
    var table = document.getElementById("live-sessions");
    if (!table) { return; }
    confirmStops(table);
    var every = (parseInt(table.dataset.refreshSeconds, 10) || 10) * 1000;
    var page = new URLSearchParams(window.location.search).get("p");
    var url = table.dataset.jsonUrl + (page ? (table.dataset.jsonUrl.indexOf("?") < 0 ? "?" : "&") + "p=" + encodeURIComponent(page) : "");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { render(table, data); } })
        .catch(function () {})
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
