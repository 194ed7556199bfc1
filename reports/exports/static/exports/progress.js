// "My exports": while a job is queued or running, ask for its progress every few seconds
// and show it in place; when one finishes, reload the page for its download link.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  var url = null;
  function pending() {
    var ids = [];
    document.querySelectorAll("[data-export-state]").forEach(function (el) {
      var state = el.getAttribute("data-export-state");
      if (state === "queued" || state === "running") {
        ids.push(el.getAttribute("data-export-job"));
        url = el.getAttribute("data-progress-url");
      }
    });
    return ids;
  }
  function poll() {
    var ids = pending();
    if (!ids.length) { return; }
    var query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { jobs: [] }; })
      .then(function (data) {
        var finished = false;
        data.jobs.forEach(function (job) {
          var state = document.querySelector('[data-export-job="' + job.id + '"]');
          var progress = document.querySelector('[data-export-progress="' + job.id + '"]');
          if (state) {
            state.textContent = job.state_label;
            if (job.state === "done" || job.state === "failed") { finished = true; }
            state.setAttribute("data-export-state", job.state);
          }
          if (progress) { progress.textContent = job.progress; }
        });
        if (finished) { document.location.reload(); } else { window.setTimeout(poll, EVERY_MS); }
      })
      .catch(function () { window.setTimeout(poll, EVERY_MS * 3); });
  }
  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, EVERY_MS); });
})();
