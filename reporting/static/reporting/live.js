// The live dashboard: numbers pushed over a websocket replace the text of the elements that
// name them (data-live="name"), and the value of meters (data-live-value="name"), in place.
// Reconnects after a drop with back-off; pings keep the page registered as watching.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-url]");
  if (!root || !window.WebSocket) return;
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var url = scheme + location.host + root.getAttribute("data-live-url");
  var status = root.querySelector("[data-live-status]");
  var PING_MS = 20000, MAX_DELAY_MS = 30000, FORBIDDEN = 4403;
  var delay = 1000;

  function say(text, state) {
    if (!status) return;
    status.textContent = text;
    root.setAttribute("data-live-state", state);
  }

  function apply(fields) {
    root.querySelectorAll("[data-live]").forEach(function (el) {
      var name = el.getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(fields, name)) el.textContent = fields[name];
    });
    root.querySelectorAll("[data-live-value]").forEach(function (el) {
      var name = el.getAttribute("data-live-value");
      if (Object.prototype.hasOwnProperty.call(fields, name)) el.value = Number(fields[name]);
    });
    var ticks = Number(root.getAttribute("data-live-ticks") || "0") + 1;
    root.setAttribute("data-live-ticks", String(ticks));
  }

  function connect() {
    var socket = new WebSocket(url);
    var ping = null;
    socket.onopen = function () {
      delay = 1000;
      say("Live", "open");
      ping = setInterval(function () {
        socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.fields) apply(message.fields);
    };
    socket.onclose = function (event) {
      if (ping) clearInterval(ping);
      if (event.code === FORBIDDEN) {
        say("Not allowed any more: reload the page", "closed");
        return;
      }
      say("Reconnecting…", "retrying");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    };
  }

  connect();
})();
