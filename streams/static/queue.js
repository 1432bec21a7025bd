// Community queue: poll the JSON every second, redraw the cards, count down due times, Accept / Resolve.
(function () {
  "use strict";
  var list = document.getElementById("queue");
  var code = list.getAttribute("data-code");
  var lang = document.body.getAttribute("data-lang") || "zh";
  var zone = document.body.getAttribute("data-zone") || undefined;
  var fullPhone = null;
  var W = {
    zh: {open: "待接收", accepted: "已接收", resolved: "已办结", closed: "已解除", accept: "接收", resolve: "办结",
         by: "接收时限", none: "无时限", left: "剩余", late: "已超时", reasons: "原因", notes: "备注", note: "备注",
         ask: "办结说明", recovering: "正在恢复数据或等待各节点应答，完整的案件列表稍后显示……",
         dispatched: "已派车", picked_up: "已接到", received: "已接收入点", stage_dispatched: "派车",
         stage_picked_up: "已接到人", stage_received: "隔离点接收", site: "接收点位", arrived: "到达点位时间（如 2022-06-20T10:00+08:00，可留空）",
         transfer: "转运用时", reception: "接收用时", minutes: "分钟",
         new_request: "登记诉求", request_kind: "诉求类型：1 物资  2 就医  3 其他", request_text: "诉求内容（500 字以内）",
         answer: "答复", answer_text: "答复内容（500 字以内）", supplies: "物资", medical: "就医", other: "其他",
         req_open: "待答复", req_overdue: "超时未答复", req_answered: "已答复", answer_by: "答复时限",
         response: "响应用时"},
    en: {open: "to accept", accepted: "accepted", resolved: "resolved", closed: "closed", accept: "Accept",
         resolve: "Resolve", by: "accept by", none: "no deadline", left: "left", late: "overdue by",
         reasons: "Reasons", notes: "notes", note: "note", ask: "Resolution note",
         recovering: "Recovering, or waiting for every worker to answer; the complete queue shows in a moment…",
         dispatched: "dispatched", picked_up: "picked up", received: "received", stage_dispatched: "Dispatch",
         stage_picked_up: "Picked up", stage_received: "Received at site", site: "Receiving site",
         arrived: "Arrived at the site (e.g. 2022-06-20T10:00+08:00, may be left empty)",
         transfer: "transfer", reception: "reception", minutes: "min",
         new_request: "Log a request", request_kind: "Kind: 1 supplies  2 medical  3 other",
         request_text: "What is asked for (at most 500 characters)", answer: "Answer",
         answer_text: "The answer (at most 500 characters)", supplies: "supplies", medical: "medical", other: "other",
         req_open: "awaiting answer", req_overdue: "overdue", req_answered: "answered", answer_by: "answer by",
         response: "response"}
  }[lang];
  var when = window.epiflowWhen(zone);
  var clock = new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", {timeZone: zone, hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false});

  function el(tag, cls, value) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (value != null) e.textContent = String(value);
    return e;
  }

  function countdown(dueIso) {
    var left = Math.round((Date.parse(dueIso) - Date.now()) / 1000);
    var late = left < 0;
    left = Math.abs(left);
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    var text = lang === "zh"
      ? (h ? h + "小时" : "") + m + "分" + (s < 10 ? "0" : "") + s + "秒"
      : (h ? h + "h " : "") + m + "m " + (s < 10 ? "0" : "") + s + "s";
    return (late ? W.late : W.left) + " " + text;
  }

  function tick() {
    Array.prototype.forEach.call(document.querySelectorAll("#queue .countdown, #done .countdown"), function (span) {
      var card = span.closest(".card");
      if (card && card.getAttribute("data-status") === "open") span.textContent = countdown(span.getAttribute("data-due"));
      else span.textContent = "";
    });
  }

  function act(caseId, step) {
    var body = {};
    if (step === "resolve") {
      var note = window.prompt(W.ask, "");
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

  function stage(caseId, name) {
    var body = {stage: name};
    if (name === "received") {
      var site = window.prompt(W.site, "");
      if (site === null) return;
      body.site = site;
      var arrived = window.prompt(W.arrived, "");
      if (arrived === null) return;
      if (arrived) body.arrived_at = arrived;
    }
    fetch("/api/cases/" + encodeURIComponent(caseId) + "/stages", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (j) { window.alert(j.problem || r.status); });
      return refresh();
    });
  }

  function stages(c) {
    var box = el("div", "stages");
    (c.stages || []).forEach(function (s) {
      var p = el("p", "stage " + s.stage, (W[s.stage] || s.stage) + " " + when.format(new Date(s.at)) +
        (s.site ? " · " + s.site : "") + " · " + s.by);
      p.setAttribute("data-stage", s.stage);
      box.appendChild(p);
    });
    if (c.transfer_minutes != null) box.appendChild(el("p", "times transfer", W.transfer + " " + c.transfer_minutes + " " + W.minutes));
    if (c.reception_minutes != null) box.appendChild(el("p", "times reception", W.reception + " " + c.reception_minutes + " " + W.minutes));
    return box;
  }

  var KINDS = {"1": "supplies", "2": "medical", "3": "other", supplies: "supplies", medical: "medical", other: "other"};

  function post(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (j) { window.alert(j.problem || r.status); });
      return refresh();
    });
  }

  function newRequest(caseId) {
    var kind = window.prompt(W.request_kind, "1");
    if (kind === null) return;
    var text = window.prompt(W.request_text, "");
    if (text === null) return;
    post("/api/cases/" + encodeURIComponent(caseId) + "/requests", {kind: KINDS[kind.trim()] || kind.trim(), text: text});
  }

  function answer(requestId) {
    var text = window.prompt(W.answer_text, "");
    if (text === null) return;
    post("/api/requests/" + encodeURIComponent(requestId) + "/answer", {answer: text});
  }

  function requests(c) {
    var box = el("div", "requests");
    c.requests.forEach(function (q) {
      var p = el("div", "request " + q.status);
      p.setAttribute("data-request-id", q.request_id);
      p.setAttribute("data-status", q.status);
      p.appendChild(el("p", "asked", (W[q.kind] || q.kind) + " · " + q.text + " · " + when.format(new Date(q.posted_at)) +
        " · " + q.by));
      var state = el("p", "request-state", W["req_" + q.status] || q.status);
      if (q.status !== "answered") state.textContent += " · " + W.answer_by + " " + when.format(new Date(q.due_at));
      p.appendChild(state);
      if (q.answer != null) {
        p.appendChild(el("p", "answer", W.answer + ": " + q.answer + " · " + q.answered_by));
        p.appendChild(el("p", "times response", W.response + " " + q.response_minutes + " " + W.minutes));
      } else {
        var b = el("button", "answer-request", W.answer);
        b.onclick = function () { answer(q.request_id); };
        p.appendChild(b);
      }
      box.appendChild(p);
    });
    return box;
  }

  function card(c) {
    var a = el("article", "card " + c.status + (c.overdue ? " overdue" : ""));
    a.setAttribute("data-case-id", c.case_id);
    a.setAttribute("data-status", c.status);
    var head = el("div", "card-head");
    head.appendChild(el("span", "name", c.name));
    head.appendChild(el("span", "mono masked", c.masked_id));
    head.appendChild(el("span", "badge status", W[c.status] || c.status));
    a.appendChild(head);
    var action = el("p", "action");
    action.appendChild(el("b", null, lang === "zh" ? c.action_text : c.action_text_en));
    a.appendChild(action);
    var due = el("p", "due");
    if (c.due_at) {
      due.appendChild(document.createTextNode(W.by + " "));
      var t = el("time", null, when.format(new Date(c.due_at)));
      t.setAttribute("datetime", c.due_at);
      due.appendChild(t);
      due.appendChild(document.createTextNode(" "));
      var cd = el("span", "countdown");
      cd.setAttribute("data-due", c.due_at);
      due.appendChild(cd);
    } else {
      due.textContent = W.none;
    }
    a.appendChild(due);
    var contact = el("p", "contact");
    if (fullPhone && c.phone) {
      var tel = el("a", "tel", "☎ " + c.phone);
      tel.href = "tel:" + c.phone;
      contact.appendChild(tel);
    } else {
      contact.appendChild(el("span", "mono phone", c.phone));
    }
    a.appendChild(contact);
    a.appendChild(el("p", "address", c.address || list.getAttribute("data-place")));
    var details = el("details", "reasons");
    var open = openDetails[c.case_id];
    if (open) details.open = true;
    details.addEventListener("toggle", function () { openDetails[c.case_id] = details.open; });
    details.appendChild(el("summary", null, W.reasons + " (" + c.reasons.length + ")" +
      (c.notes.length ? " · " + W.notes + " (" + c.notes.length + ")" : "")));
    var ul = el("ul");
    c.reasons.forEach(function (r) { ul.appendChild(el("li", null, r)); });
    c.notes.forEach(function (n) { ul.appendChild(el("li", "note", W.note + ": " + n)); });
    details.appendChild(ul);
    a.appendChild(details);
    if (c.stages) a.appendChild(stages(c));
    if (c.requests && c.requests.length) a.appendChild(requests(c));
    var buttons = el("div", "buttons");
    if (c.status !== "closed") {
      var rq = el("button", "new-request", W.new_request);
      rq.onclick = function () { newRequest(c.case_id); };
      buttons.appendChild(rq);
    }
    if (c.next_stage && c.status === "accepted") {
      var st = el("button", "stage-next", W["stage_" + c.next_stage]);
      st.setAttribute("data-stage", c.next_stage);
      st.onclick = function () { stage(c.case_id, c.next_stage); };
      buttons.appendChild(st);
    }
    if (c.status === "open") {
      var acc = el("button", "accept", W.accept);
      acc.onclick = function () { act(c.case_id, "accept"); };
      buttons.appendChild(acc);
    }
    if (c.status === "open" || c.status === "accepted") {
      var res = el("button", "resolve", W.resolve);
      res.onclick = function () { act(c.case_id, "resolve"); };
      buttons.appendChild(res);
    }
    a.appendChild(buttons);
    return a;
  }

  var openDetails = {};

  function banner(show) {
    var b = document.getElementById("recovering");
    if (show && !b) {
      b = el("p", "warn", W.recovering);
      b.id = "recovering";
      b.setAttribute("role", "status");
      list.parentNode.insertBefore(b, list);
    } else if (!show && b) {
      b.parentNode.removeChild(b);
    }
  }

  var PAGE = 30;
  var limit = PAGE;
  var doneList = document.getElementById("done");
  var more = document.getElementById("more");
  more.onclick = function () { limit += PAGE; refresh(); };

  function draw(data) {
    banner(false);
    var active = data.cases.filter(function (c) { return c.status === "open" || c.status === "accepted"; });
    var done = data.cases.filter(function (c) { return c.status !== "open" && c.status !== "accepted"; });
    list.textContent = "";
    active.slice(0, limit).forEach(function (c) { list.appendChild(card(c)); });
    doneList.textContent = "";
    done.slice(0, limit).forEach(function (c) { doneList.appendChild(card(c)); });
    more.hidden = active.length <= limit;
    document.getElementById("done-box").hidden = done.length === 0;
    document.getElementById("count-done").textContent = done.length;
    document.getElementById("count-open").textContent = active.length;
    document.getElementById("count-overdue").textContent = data.cases.filter(function (c) { return c.overdue; }).length;
    document.getElementById("empty").hidden = data.cases.length > 0;
    document.getElementById("updated").textContent = clock.format(new Date());
    tick();
  }

  function refresh() {
    return fetch("/api/communities/" + encodeURIComponent(code) + "/cases", {credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(window.location.pathname); return null; }
        if (r.status === 503) { banner(true); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) draw(data); })
      .catch(function () {});
  }

  fullPhone = list.getAttribute("data-full-phone") === "true";
  tick();
  refresh();
  setInterval(refresh, 1000);
  setInterval(tick, 1000);
})();
