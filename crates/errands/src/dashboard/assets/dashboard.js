// errands dashboard: live updates of the overview over server-sent events, with pause.
// No framework, no build step; compiled into the library.
(function () {
  "use strict";
  var pause = document.getElementById("pause");
  var live = document.getElementById("live");
  var counters = document.querySelectorAll("[data-stat]");
  if (!counters.length) {
    if (pause) pause.hidden = true;
    return;
  }
  var previous = null;
  var source = null;

  function text(element, value) {
    if (element && element.textContent !== String(value)) element.textContent = value;
  }

  function cell(row, value) {
    var td = document.createElement("td");
    td.textContent = value;
    row.appendChild(td);
  }

  function apply(snapshot) {
    counters.forEach(function (element) {
      text(element, snapshot.stats[element.dataset.stat]);
    });
    if (previous) {
      var seconds = (snapshot.at - previous.at) / 1000;
      document.querySelectorAll("[data-rate]").forEach(function (element) {
        var key = element.dataset.rate;
        var rate = (snapshot.stats[key] - previous.stats[key]) / seconds;
        text(element, seconds > 0 ? rate.toFixed(1) : "–");
      });
    }
    document.querySelectorAll("[data-key]").forEach(function (element) {
      text(element, snapshot[element.dataset.key]);
    });
    var queues = document.getElementById("queues");
    if (queues && snapshot.durable && snapshot.durable.queues) {
      var rows = document.createDocumentFragment();
      snapshot.durable.queues.forEach(function (queue) {
        var row = document.createElement("tr");
        cell(row, queue.queue);
        cell(row, queue.held);
        cell(row, queue.available);
        cell(row, queue.running);
        cell(row, queue.lag_seconds.toFixed(1) + " s");
        rows.appendChild(row);
      });
      queues.replaceChildren(rows);
    }
    previous = snapshot;
    text(live, "live · " + new Date(snapshot.at).toLocaleTimeString());
  }

  function connect() {
    source = new EventSource("events");
    source.addEventListener("overview", function (event) {
      apply(JSON.parse(event.data));
    });
    source.onerror = function () {
      text(live, "reconnecting…");
    };
  }

  pause.addEventListener("click", function () {
    var paused = pause.getAttribute("aria-pressed") === "true";
    if (paused) {
      pause.setAttribute("aria-pressed", "false");
      pause.textContent = "Pause";
      previous = null;
      connect();
    } else {
      pause.setAttribute("aria-pressed", "true");
      pause.textContent = "Resume";
      source.close();
      text(live, "paused");
    }
  });

  var initial = document.getElementById("snapshot");
  if (initial) previous = JSON.parse(initial.textContent);
  connect();
})();
