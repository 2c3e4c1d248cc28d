/* wowevent console: refreshes live regions and selects every row. No inline script anywhere
   (the service's Content-Security-Policy allows scripts from this origin's files only). */
(function () {
  "use strict";

  // <div data-refresh="/console/overview/table" data-every="5">: its content is fetched again
  // every few seconds, until a fetched fragment holds a [data-final] element.
  function follow(region) {
    var url = region.getAttribute("data-refresh");
    var every = Math.max(1, Number(region.getAttribute("data-every") || "5")) * 1000;

    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.redirected || response.status === 401) {
            window.location.reload(); // the session ended: the page itself goes to sign-in
            return null;
          }
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (html === null) {
            return;
          }
          region.innerHTML = html;
          region.removeAttribute("data-stale");
          if (!region.querySelector("[data-final]")) {
            window.setTimeout(tick, every);
          }
        })
        .catch(function () {
          region.setAttribute("data-stale", "");
          window.setTimeout(tick, every);
        });
    }

    if (!region.querySelector("[data-final]")) {
      window.setTimeout(tick, every);
    }
  }

  // <input type="checkbox" data-select-all="id">: (un)checks every name="id" box of its form.
  function selectAll(box) {
    box.addEventListener("change", function () {
      var name = box.getAttribute("data-select-all");
      var boxes = box.form ? box.form.querySelectorAll('input[type="checkbox"]') : [];
      Array.prototype.forEach.call(boxes, function (other) {
        if (other.name === name) {
          other.checked = box.checked;
        }
      });
    });
  }

  document.querySelectorAll("[data-refresh]").forEach(follow);
  document.querySelectorAll("input[data-select-all]").forEach(selectAll);
})();
