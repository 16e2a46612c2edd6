// Follows a job on its page (/jobs/ID) while it waits or runs: every few seconds it loads the page again in
// the background and puts the new contents of each [data-follow] element (matched by id) in place, so the
// state (a polite live region), the facts and the ends of stdout and stderr stay current without a reload
// that would move the reader's focus. It stops once the job has finished. Without this script the page's
// Refresh link does the same by hand.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  var live = document.getElementById("job-live");
  if (!live || live.dataset.finished === "true") return;

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 8;
  }

  function apply(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var next = fresh.getElementById("job-live");
    if (!next) return false;
    document.querySelectorAll("#job-live [data-follow]").forEach(function (el) {
      var source = fresh.getElementById(el.id);
      if (!source || source.innerHTML === el.innerHTML) return;
      var follow = el.tagName === "PRE" && atBottom(el);
      el.innerHTML = source.innerHTML;
      if (follow) el.scrollTop = el.scrollHeight;
    });
    live.dataset.finished = next.dataset.finished;
    return next.dataset.finished === "true";
  }

  function poll() {
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || !apply(html)) window.setTimeout(poll, EVERY_MS);
      })
      .catch(function () { window.setTimeout(poll, EVERY_MS * 2); });
  }

  window.setTimeout(poll, EVERY_MS);
})();
