// Command centre: poll /api/dashboard every second; update totals, lists, the map levels and key groups;
// today's checkpoint coverage comes from the daily report's figures, once a minute.
(function () {
  "use strict";
  var HEX = {red: "#d7191c", orange: "#f58231", yellow: "#f5d33c", blue: "#3b7dd8", green: "#2e9e4f"};
  var COLOUR = ["green", "blue", "yellow", "orange", "red"];
  var lang = document.body.getAttribute("data-lang") || "zh";
  var zone = document.body.getAttribute("data-zone") || undefined;
  var when = window.epiflowWhen(zone);
  var clock = new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", {timeZone: zone, hour: "2-digit",
    minute: "2-digit", hour12: false});
  var W = lang === "zh" ? {open: "未结", overdue: "超时"} : {open: "open", overdue: "overdue"};

  function set(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value == null ? "—" : String(value);
  }

  function cell(tr, value, cls, href) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = value;
      td.appendChild(a);
    } else {
      td.textContent = value == null ? "" : String(value);
    }
    tr.appendChild(td);
  }

  function rows(id, items, each) {
    var body = document.querySelector("#" + id + " tbody");
    if (!body) return;
    body.textContent = "";
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      each(tr, item);
      body.appendChild(tr);
    });
  }

  function community(code) { return "/communities/" + encodeURIComponent(code); }

  function streets(list) {
    var box = document.getElementById("streets");
    var open = {};
    Array.prototype.forEach.call(box.querySelectorAll("details"), function (d) { open[d.id] = d.open; });
    box.textContent = "";
    list.forEach(function (s) {
      var d = document.createElement("details");
      d.className = "street";
      d.id = "street-" + s.street;
      d.open = !!open[d.id];
      var summary = document.createElement("summary");
      var b = document.createElement("b");
      b.textContent = s.street;
      summary.appendChild(b);
      var meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = " " + W.open + " " + s.open + " · " + W.overdue + " " + s.overdue;
      summary.appendChild(meta);
      d.appendChild(summary);
      var table = document.createElement("table");
      table.className = "compact";
      var body = document.createElement("tbody");
      s.communities.forEach(function (c) {
        var tr = document.createElement("tr");
        cell(tr, c.name, null, community(c.code));
        cell(tr, c.open, "n");
        cell(tr, c.overdue, "n");
        body.appendChild(tr);
      });
      table.appendChild(body);
      d.appendChild(table);
      box.appendChild(d);
    });
  }

  function paint(selector, levels) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), function (p) {
      var colour = COLOUR[levels[p.getAttribute("data-code")] || 0];
      if (p.getAttribute("data-colour") !== colour) {
        p.setAttribute("data-colour", colour);
        p.setAttribute("fill", HEX[colour]);
      }
    });
  }

  function draw(d) {
    document.getElementById("recovering").hidden = true;
    set("t-open", d.cases_open);
    set("t-overdue", d.cases_overdue);
    set("t-total", d.cases_total);
    set("t-resolved", d.cases_resolved);
    set("t-closed", d.cases_closed);
    set("t-inputs", d.counts.inputs);
    set("t-dead", d.counts.dead_lettered);
    set("t-latency", d.latency_mean_ms);
    set("overdue-count", d.overdue.length);
    set("updated", clock.format(new Date()));
    document.getElementById("overdue-none").hidden = d.overdue.length > 0;
    document.getElementById("overdue").hidden = d.overdue.length === 0;
    document.getElementById("overdue-more").hidden = d.overdue.length <= 20;
    rows("overdue", d.overdue.slice(0, 20), function (tr, o) {
      cell(tr, o.community_name, null, community(o.community));
      cell(tr, o.masked_id, "mono");
      cell(tr, lang === "zh" ? o.action_text : o.action);
      cell(tr, o.due_at ? when.format(new Date(o.due_at)) : "—");
    });
    rows("top-communities", d.top_communities, function (tr, c) {
      cell(tr, c.name, null, community(c.code));
      cell(tr, c.street);
      cell(tr, c.open, "n");
      cell(tr, c.overdue, "n");
    });
    streets(d.streets);
    if (d.management) {
      set("m-active", d.management.by_status.active);
      set("m-overdue", d.management.by_status.overdue);
      set("m-released", d.management.by_status.released_today);
      set("m-due", d.management.tests_due_today);
      rows("management-streets", d.management.streets, function (tr, s) {
        cell(tr, s.street);
        cell(tr, s.active, "n");
        cell(tr, s.overdue, "n");
        cell(tr, s.released_today, "n");
      });
    }
    if (d.requests) {
      var dash = function (v) { return v == null ? "—" : v; };
      set("r-open", d.requests.open);
      set("r-overdue", d.requests.overdue);
      set("r-median", dash(d.requests.median_response_minutes));
      set("x-progress", d.transfers.in_progress.length);
      set("x-transfer", dash(d.transfers.median_transfer_minutes));
      set("x-reception", dash(d.transfers.median_reception_minutes));
      rows("request-streets", d.requests.streets, function (tr, s) {
        cell(tr, s.street);
        cell(tr, s.open, "n");
        cell(tr, s.overdue, "n");
      });
      rows("transfers", d.transfers.in_progress.slice(0, 20), function (tr, x) {
        cell(tr, x.community_name, null, community(x.community));
        cell(tr, x.masked_id, "mono");
        cell(tr, x.stage || "—");
        cell(tr, dash(x.minutes_since_accepted), "n");
      });
    }
    rows("by-action", Object.keys(d.open_by_action).map(function (k) { return [k, d.open_by_action[k]]; }), function (tr, kv) {
      cell(tr, lang === "zh" ? (d.action_texts[kv[0]] || kv[0]) : kv[0]);
      cell(tr, kv[1], "n");
    });
    rows("dead", Object.keys(d.dead_letters_by_reason).map(function (k) { return [k, d.dead_letters_by_reason[k]]; }), function (tr, kv) {
      cell(tr, kv[0]);
      cell(tr, kv[1], "n");
    });
    paint("#map-communities path.community", d.levels);
    paint("#map-streets path.community", d.street_levels);
    if (d.key_groups) keyGroups(d.key_groups);
  }

  function pct(rate) { return rate == null ? "—" : (Math.round(1000 * rate) / 10) + "%"; }

  function bars(id, items) {
    var box = document.getElementById(id);
    if (!box) return;
    Array.prototype.forEach.call(box.querySelectorAll(".rate-row"), function (r) { r.remove(); });
    items.forEach(function (it) {
      var row = document.createElement("div");
      row.className = "rate-row";
      row.setAttribute("data-group", it.key);
      row.setAttribute("data-rate", String(it.rate));
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = it.label;
      label.title = it.label;
      var bar = document.createElement("span");
      bar.className = "bar";
      var fill = document.createElement("span");
      fill.className = "fill " + (it.rate >= 0.96 ? "good" : it.rate >= 0.9 ? "fair" : "poor");
      fill.style.width = (100 * (it.rate || 0)) + "%";
      bar.appendChild(fill);
      var value = document.createElement("span");
      value.className = "pct";
      value.textContent = pct(it.rate);
      row.appendChild(label);
      row.appendChild(bar);
      row.appendChild(value);
      box.appendChild(row);
    });
  }

  function keyGroups(kg) {
    set("kg-version", kg.version);
    set("kg-reminders", kg.reminders_sent);
    var name = function (g) { return lang === "zh" ? g.name.zh : g.name.en; };
    bars("kg-chart", kg.groups.filter(function (g) { return g.enrolled > 0; })
      .map(function (g) { return {key: g.id, label: name(g), rate: g.rate}; }));
    var streets = {};
    kg.streets.forEach(function (s) {
      var k = s.street || "—";
      streets[k] = streets[k] || [0, 0];
      streets[k][0] += s.enrolled;
      streets[k][1] += s.on_time;
    });
    bars("kg-street-chart", Object.keys(streets).sort().map(function (k) {
      return {key: k, label: k, rate: streets[k][1] / streets[k][0]};
    }));
    rows("kg-table", kg.groups, function (tr, g) {
      tr.setAttribute("data-group", g.id);
      cell(tr, name(g));
      cell(tr, g.every_hours + "h", "n");
      cell(tr, g.enrolled, "n");
      cell(tr, g.on_time, "n");
      cell(tr, pct(g.rate), "n");
      cell(tr, g.overdue.length, "n");
      cell(tr, (kg.reminders_by_group || {})[g.id] || 0, "n");
    });
  }

  function coverage() {
    fetch("/reports/daily?format=json", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (rep) {
        if (!rep || !rep.key_groups) return;
        var list = rep.key_groups.coverage;
        document.getElementById("coverage-none").hidden = list.length > 0;
        rows("coverage", list, function (tr, c) {
          tr.setAttribute("data-enterprise", c.enterprise);
          cell(tr, c.name + " (" + c.enterprise + ")");
          cell(tr, c.vehicles_checked + "/" + c.vehicles + " · " + pct(c.vehicle_rate), "n");
          cell(tr, c.people_checked + "/" + c.people + " · " + pct(c.people_rate), "n");
          cell(tr, c.unchecked_plates.concat(c.unchecked_people).join(" ") || "—", "mono");
        });
      })
      .catch(function () {});
  }

  function refresh() {
    fetch("/api/dashboard", {credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 503) { document.getElementById("recovering").hidden = false; return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (d) { if (d) draw(d); })
      .catch(function () {});
  }

  function view(streetsOn) {
    document.getElementById("map-communities").hidden = streetsOn;
    document.getElementById("map-streets").hidden = !streetsOn;
    var a = document.getElementById("view-communities"), b = document.getElementById("view-streets");
    a.className = "view" + (streetsOn ? "" : " on");
    b.className = "view" + (streetsOn ? " on" : "");
    a.setAttribute("aria-pressed", String(!streetsOn));
    b.setAttribute("aria-pressed", String(streetsOn));
  }

  document.getElementById("view-communities").onclick = function () { view(false); };
  document.getElementById("view-streets").onclick = function () { view(true); };
  setInterval(refresh, 1000);
  coverage();
  setInterval(coverage, 60000);
})();
