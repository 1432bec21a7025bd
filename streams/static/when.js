// Times in the display zone, written as the server renders them (06-20 10:30); shared by the queue and the dashboard.
window.epiflowWhen = function (zone) {
  "use strict";
  var parts = new Intl.DateTimeFormat("en-GB", {timeZone: zone, month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23"});
  return {format: function (d) {
    var p = {};
    parts.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    return p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }};
};
