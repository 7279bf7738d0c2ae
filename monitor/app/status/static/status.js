// recmon status page: refreshes the incidents, the grid and the certificates in place (no
// full reload), and filters as you type. Same-origin requests only (Content-Security-Policy).
"use strict";
(function () {
  const body = document.body;
  const live = body.dataset.live;
  const every = Math.max(1, Number(body.dataset.refresh || 5)) * 1000;
  if (!live) return;
  const params = new URLSearchParams(location.search);
  let busy = false;

  function swap(id, html) {
    const el = document.getElementById(id);
    if (el && typeof html === "string" && el.innerHTML !== html) el.innerHTML = html;
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(live + "?" + params.toString(), { cache: "no-store" });
      if (!response.ok) throw new Error("status " + response.status);
      const parts = await response.json();
      for (const [id, html] of Object.entries(parts.html || {})) swap(id, html);
      if (parts.title) document.title = parts.title;
      const stamp = document.getElementById("updated");
      if (stamp) stamp.textContent = "updated " + parts.generated;
      body.classList.remove("stale");
    } catch (err) {
      const el = document.getElementById("updated");
      if (el) el.textContent = "update failed (" + err.message + "), retrying";
      body.classList.add("stale");
    } finally {
      busy = false;
    }
  }

  const input = document.getElementById("q");
  if (input) {
    let timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        params.set("q", input.value);
        params.delete("page");
        history.replaceState(null, "", "?" + params.toString());
        refresh();
      }, 250);
    });
    input.form.addEventListener("submit", function (event) {
      event.preventDefault();
      params.set("q", input.value);
      params.delete("page");
      history.replaceState(null, "", "?" + params.toString());
      refresh();
    });
  }
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a[data-page]");
    if (!link) return;
    event.preventDefault();
    params.set("page", link.dataset.page);
    history.replaceState(null, "", "?" + params.toString());
    refresh();
  });
  setInterval(refresh, every);
})();
