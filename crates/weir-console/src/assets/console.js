// Weir console: the little script every page loads (embedded in the binary).
// Pages work without it; with it, parts marked data-refresh="<ms>" are
// re-fetched and swapped in place, and a list marked data-live="<url>"
// tails the HTTP API's Server-Sent Events. User data only ever reaches the
// page as textContent or as markup the server escaped.
"use strict";

(function () {
  const TAIL_MAX = 100;

  // Fetch the page again and swap in every refreshed part, by id.
  function refresher(ms) {
    let busy = false;
    setInterval(async function () {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const res = await fetch(location.href, { headers: { accept: "text/html" } });
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        document.querySelectorAll("[data-refresh][id]").forEach(function (old) {
          const fresh = doc.getElementById(old.id);
          if (fresh) old.replaceWith(document.importNode(fresh, true));
        });
      } catch (e) {
        // The server may be restarting; the next tick tries again.
      } finally {
        busy = false;
      }
    }, ms);
  }

  function describe(kind, body) {
    if (kind === "record") {
      const key = body.key === null || body.key === undefined ? "" : " key=" + body.key;
      return "offset " + body.offset + key;
    }
    return "#" + body.position + "  " + body.stream + "  v" + body.version + "  " + body.type;
  }

  function tail(list) {
    const state = document.getElementById("live-state");
    const source = new EventSource(list.dataset.live);
    const show = function (text) { if (state) state.textContent = text; };
    source.onopen = function () { show("live"); };
    source.onerror = function () { show("reconnecting…"); };
    const add = function (kind) {
      return function (msg) {
        let body;
        try { body = JSON.parse(msg.data); } catch (e) { return; }
        const item = document.createElement("li");
        item.className = "tail-item";
        item.textContent = describe(kind, body);
        list.prepend(item);
        const empty = document.getElementById("tail-empty");
        if (empty) empty.remove();
        while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
      };
    };
    source.addEventListener("event", add("event"));
    source.addEventListener("record", add("record"));
  }

  document.addEventListener("DOMContentLoaded", function () {
    let every = 0;
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      const ms = parseInt(el.dataset.refresh, 10);
      if (ms > 0 && (every === 0 || ms < every)) every = ms;
    });
    if (every > 0) refresher(Math.max(every, 1000));
    document.querySelectorAll("[data-live]").forEach(tail);
  });
})();
