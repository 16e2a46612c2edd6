// A "Copy" button beside a secret shown once (a new API key): <button data-copy="ID"> copies the text of
// the element with that id to the clipboard and says so. Without the Clipboard API (an http:// page that
// is not localhost), it selects the text for Ctrl+C instead.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (!target) { return; }
      var done = function (message) { button.textContent = message; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(target.textContent.trim()).then(
          function () { done("Copied"); },
          function () { select(target); done("Press Ctrl+C"); });
      } else {
        select(target);
        done("Press Ctrl+C");
      }
    });
  });

  function select(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
}());
