// Saves an application draft while the applicant types: a form with data-autosave="/api/v1/applications/ID"
// sends the fields marked data-draft="FIELD" to that URL (PATCH, JSON) a moment after the last change.
// data-kind says how to read a value: int, float, bool, list (one e-mail per line); data-key puts
// the value under that key of an object (GPU-hours per partition). Values that are not valid yet are left
// out; a field the server refuses is left out and the rest saved. Without this script the form's buttons
// save each step all the same.
(function () {
  "use strict";
  var DELAY_MS = 800;

  function read(input) {
    var kind = input.dataset.kind || "text";
    if (input.type === "radio") return input.checked ? input.value : undefined;
    if (kind === "bool") return input.checked;
    var raw = input.value.trim();
    if (kind === "list") return raw.split(/[\s,;]+/).filter(Boolean);
    if (kind === "int" || kind === "float") {
      var text = raw.replace(/[\s,_']/g, "");
      if (text === "") return kind === "int" && input.dataset.draft !== "duration_months" ? 0 : undefined;
      var pattern = kind === "int" ? /^\d+$/ : /^\d+(\.\d+)?$/;
      return pattern.test(text) ? Number(text) : undefined;
    }
    return input.value;
  }

  function payload(form) {
    var body = {};
    form.querySelectorAll("[data-draft]").forEach(function (input) {
      var value = read(input);
      var name = input.dataset.draft;
      if (input.dataset.key) {
        body[name] = body[name] || {};
        if (value === undefined) { body[name] = null; return; }
        if (body[name] !== null && value > 0) body[name][input.dataset.key] = value;
        return;
      }
      if (value !== undefined) body[name] = value;
    });
    Object.keys(body).forEach(function (name) { if (body[name] === null) delete body[name]; });
    return body;
  }

  function say(form, text) {
    var status = form.querySelector(".autosave-status");
    if (status) status.textContent = text;
  }

  function send(form, body, retried) {
    var token = document.querySelector('meta[name="csrf-token"]');
    return fetch(form.dataset.autosave, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token ? token.content : "" },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (response.ok) {
        // 24-hour time, as everywhere in the portal (toLocaleTimeString gives "5:37:47 PM" in a US locale).
        say(form, "Draft saved at " + new Date().toTimeString().slice(0, 8) + ".");
        return;
      }
      return response.json().then(function (answer) {
        var error = answer.error || {};
        var field = error.param && error.param.split(".")[0];
        if (!retried && field && field in body) {
          delete body[field];
          return send(form, body, true);
        }
        say(form, "Not saved automatically: " + (error.message || response.status) + ". Use the Save button.");
      });
    }).catch(function () {
      say(form, "Not saved automatically (no connection). Use the Save button.");
    });
  }

  document.querySelectorAll("form[data-autosave]").forEach(function (form) {
    var timer = null;
    function later() {
      clearTimeout(timer);
      timer = setTimeout(function () { send(form, payload(form), false); }, DELAY_MS);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });
})();
