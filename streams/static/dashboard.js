// Command centre: poll /api/dashboard every second; update totals, tables and the map colours.
(function () {
  "use strict";
  var HEX = {red: "#d7191c", orange: "#f58231", yellow: "#f5d33c", blue: "#3b7dd8", green: "#2e9e4f"};

  function set(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value == null ? "—" : String(value);
  }

  function fill(id, pairs, link) {
    var body = document.querySelector("#" + id + " tbody");
    body.textContent = "";
    pairs.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (value, i) {
        var td = document.createElement("td");
        if (link && i === 0) {
          var a = document.createElement("a");
          a.href = "/communities/" + encodeURIComponent(value);
          a.textContent = value;
          td.appendChild(a);
        } else {
          td.textContent = String(value);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function entries(obj) { return Object.keys(obj).map(function (k) { return [k, obj[k]]; }); }

  function draw(d) {
    set("t-inputs", d.counts.inputs);
    set("t-open", d.cases_open);
    set("t-overdue", d.overdue.length);
    set("t-dead", d.counts.dead_lettered);
    set("t-latency", d.latency_mean_ms);
    fill("by-action", entries(d.open_by_action), false);
    fill("by-community", entries(d.open_by_community), true);
    fill("overdue", d.overdue.map(function (o) { return [o.community, o.action, o.minutes_late + " min"]; }), true);
    fill("dead", entries(d.dead_letters_by_reason), false);
    Array.prototype.forEach.call(document.querySelectorAll("path.community"), function (p) {
      var colour = d.colours[p.getAttribute("data-code")] || "green";
      if (p.getAttribute("data-colour") !== colour) {
        p.setAttribute("data-colour", colour);
        p.setAttribute("fill", HEX[colour]);
      }
    });
  }

  function refresh() {
    fetch("/api/dashboard", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) draw(d); })
      .catch(function () {});
  }

  setInterval(refresh, 1000);
})();
