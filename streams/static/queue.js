// Community queue: poll the JSON every second, redraw rows, count down due times, Accept / Resolve.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  var code = table.getAttribute("data-code");
  var rows = document.getElementById("rows");
  var latest = [];

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value == null ? "" : String(value);
    if (cls) el.className = cls;
    return el;
  }

  function countdown(c) {
    if (c.status === "resolved") return "resolved";
    if (c.status === "accepted") return "accepted";
    if (!c.due_at) return "—";
    var left = Math.round((Date.parse(c.due_at) - Date.now()) / 1000);
    var sign = left < 0 ? "overdue " : "";
    left = Math.abs(left);
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    return sign + (h ? h + "h " : "") + m + "m " + (s < 10 ? "0" : "") + s + "s";
  }

  function act(caseId, step) {
    var body = {};
    if (step === "resolve") {
      var note = window.prompt("Resolution note", "");
      if (note === null) return;
      body.note = note;
    }
    fetch("/api/cases/" + encodeURIComponent(caseId) + "/" + step, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (j) { window.alert(j.problem || r.status); });
      return refresh();
    });
  }

  function draw(data) {
    latest = data.cases;
    rows.textContent = "";
    var open = 0, late = 0;
    data.cases.forEach(function (c) {
      if (c.status !== "resolved") open++;
      if (c.overdue) late++;
      var tr = document.createElement("tr");
      tr.setAttribute("data-case-id", c.case_id);
      tr.setAttribute("data-status", c.status);
      tr.className = c.status + (c.overdue ? " overdue" : "");
      tr.appendChild(text("td", countdown(c), "due"));
      tr.appendChild(text("td", c.name));
      tr.appendChild(text("td", c.masked_id, "mono"));
      tr.appendChild(text("td", c.phone, "mono"));
      var a = text("td", "");
      a.appendChild(text("b", c.action));
      a.appendChild(document.createElement("br"));
      a.appendChild(text("small", c.action_text));
      tr.appendChild(a);
      var reasons = text("td", "");
      var ul = document.createElement("ul");
      c.reasons.forEach(function (r) { ul.appendChild(text("li", r)); });
      c.notes.forEach(function (n) { ul.appendChild(text("li", "note: " + n)); });
      reasons.appendChild(ul);
      tr.appendChild(reasons);
      tr.appendChild(text("td", c.status, "status"));
      var buttons = text("td", "");
      if (c.status === "open") {
        var acc = text("button", "Accept", "accept");
        acc.onclick = function () { act(c.case_id, "accept"); };
        buttons.appendChild(acc);
      }
      if (c.status !== "resolved") {
        var res = text("button", "Resolve", "resolve");
        res.onclick = function () { act(c.case_id, "resolve"); };
        buttons.appendChild(res);
      }
      tr.appendChild(buttons);
      rows.appendChild(tr);
    });
    document.getElementById("count-open").textContent = open;
    document.getElementById("count-overdue").textContent = late;
    document.getElementById("empty").hidden = data.cases.length > 0;
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  }

  function tick() {
    Array.prototype.forEach.call(rows.querySelectorAll("tr"), function (tr, i) {
      if (latest[i]) tr.firstChild.textContent = countdown(latest[i]);
    });
  }

  function refresh() {
    return fetch("/api/communities/" + encodeURIComponent(code) + "/cases", {credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(window.location.pathname); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) draw(data); })
      .catch(function () {});
  }

  refresh();
  setInterval(refresh, 1000);
  setInterval(tick, 1000);
})();
