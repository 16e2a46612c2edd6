// The chat's page (/chat/ID): sends a message without leaving the page and shows the answer as it is
// written. The message goes as JSON to /chat/ID/messages with the session's CSRF token (X-CSRF-Token, from
// <meta name="csrf-token">); the answer comes as NDJSON events (chat/stream.py): "notice" (the model is
// starting), "delta" (text, shown as plain text while it streams), then "done" (the answer as HTML rendered
// and escaped by the server, which replaces the plain text) or "error" (a refusal: quota, rate limit, a
// model starting or unavailable), shown in the conversation. Enter sends; Shift+Enter starts a new line.
// Without this script the form posts the message and the page comes back once the answer is complete.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  var log = document.getElementById("chat-log");
  var status = document.getElementById("chat-status");
  var box = document.getElementById("f-content");
  var send = document.getElementById("chat-send");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var busy = false;

  function item(role, who) {
    var empty = document.getElementById("chat-empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.className = "msg " + role;
    var name = document.createElement("p");
    name.className = "who";
    name.textContent = who;
    var body = document.createElement("div");
    body.className = "md";
    li.appendChild(name);
    li.appendChild(body);
    log.appendChild(li);
    return body;
  }

  function note(li, text, cls) {
    var p = document.createElement("p");
    p.className = cls || "meta";
    p.textContent = text;
    li.appendChild(p);
    return p;
  }

  function refused(body, event) {
    var li = body.parentNode;
    li.className = "msg error";
    li.setAttribute("role", "alert");
    body.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = event.headline || "Not answered.";
    body.appendChild(strong);
    body.appendChild(document.createTextNode(" " + (event.text || "")));
    if (event.retry_after_s) note(li, "Try again in about " + Math.ceil(event.retry_after_s) + " s.");
    status.textContent = event.headline || "Not answered.";
  }

  // A message the gateway refused is not kept: it leaves the conversation and goes back in the box.
  function withdrawn(body) {
    var mine = body.parentNode.previousElementSibling;
    if (mine && mine.classList.contains("user")) {
      if (!box.value) box.value = mine.querySelector(".md").textContent;
      mine.remove();
    }
  }

  function finished(body, event) {
    var li = body.parentNode;
    li.classList.remove("streaming");
    body.innerHTML = event.html;  // rendered by the server, with everything of the answer escaped
    var u = event.usage || {};
    var text = (u.prompt_tokens || 0) + " prompt + " + (u.completion_tokens || 0) + " completion tokens charged";
    if (event.status === "error") text += " · the model server failed mid-answer: " + (event.error || "");
    note(li, text, "meta usage");
    status.textContent = "The answer is complete.";
  }

  function handle(body, event) {
    if (event.type === "delta") {
      body.appendChild(document.createTextNode(event.text));
    } else if (event.type === "notice") {
      status.textContent = event.text;
      note(body.parentNode, event.text);
    } else if (event.type === "error") {
      refused(body, event);
      if (event.withdrawn) withdrawn(body);
    } else if (event.type === "done") {
      finished(body, event);
    }
  }

  async function read(response, body) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var pending = "";
    for (;;) {
      var part = await reader.read();
      if (part.done) break;
      pending += decoder.decode(part.value, { stream: true });
      var lines = pending.split("\n");
      pending = lines.pop();
      lines.forEach(function (line) { if (line.trim()) handle(body, JSON.parse(line)); });
    }
    if (pending.trim()) handle(body, JSON.parse(pending));
  }

  async function submit() {
    var content = box.value;
    if (busy || !content.trim()) return;
    busy = true;
    send.disabled = true;
    item("user", "You").textContent = content;
    box.value = "";
    var body = item("assistant", "Answer");
    body.parentNode.classList.add("streaming");
    status.textContent = "Sending…";
    try {
      var response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": meta ? meta.content : "" },
        body: JSON.stringify({ content: content }),
      });
      var type = response.headers.get("content-type") || "";
      if (response.ok && type.indexOf("application/x-ndjson") === 0) {
        await read(response, body);
      } else if (type.indexOf("application/json") === 0) {
        var data = await response.json();
        handle(body, data.type === "error" ? data
          : { type: "error", withdrawn: true, text: (data.error && data.error.message) || "Not sent." });
      } else {
        refused(body, { text: "The server answered " + response.status + ": reload the page and try again." });
      }
    } catch (err) {
      refused(body, { headline: "Not answered: the connection broke.", text: "Reload the page to see what was kept." });
    } finally {
      busy = false;
      send.disabled = false;
      box.focus();
    }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    submit();
  });
  box.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
})();
