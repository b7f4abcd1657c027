// chromata review: keyboard shortcuts and synchronised zoom/pan. No framework, no build step.
(function () {
  "use strict";
  const item = document.getElementById("item");
  const typing = (e) => ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey && e.key === "Enter" && e.target.id === "note") {
      document.getElementById("recolour-form").requestSubmit();
      return;
    }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const submit = (id) => { const f = document.getElementById(id); if (f) { e.preventDefault(); f.requestSubmit(); } };
    if (e.key === "a") submit("approve-form");
    else if (e.key === "r") submit("reject-form");
    else if (e.key === "n") { const n = document.getElementById("note"); if (n) { e.preventDefault(); n.focus(); } }
    else if (item && e.key === "j" && item.dataset.next) window.location = item.dataset.next;
    else if (item && e.key === "k" && item.dataset.prev) window.location = item.dataset.prev;
    else if (e.key === "0") reset();
  });

  // One transform shared by the three panes: zoom with the wheel about the cursor, pan by dragging.
  const views = Array.from(document.querySelectorAll(".view"));
  let scale = 1, tx = 0, ty = 0, drag = null;
  const apply = () => views.forEach((v) => { v.firstElementChild.style.transform = `translate(${tx}px, ${ty}px) scale(${scale})`; });
  const reset = () => { scale = 1; tx = 0; ty = 0; apply(); };
  views.forEach((v) => {
    v.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = v.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
      const k = e.deltaY < 0 ? 1.2 : 1 / 1.2, next = Math.min(16, Math.max(1, scale * k));
      tx = x - (x - tx) * (next / scale); ty = y - (y - ty) * (next / scale); scale = next;
      if (scale === 1) { tx = 0; ty = 0; }
      apply();
    }, { passive: false });
    v.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - tx, y: e.clientY - ty }; v.setPointerCapture(e.pointerId); });
    v.addEventListener("pointermove", (e) => { if (drag) { tx = e.clientX - drag.x; ty = e.clientY - drag.y; apply(); } });
    v.addEventListener("pointerup", () => { drag = null; });
  });

  // The queue grid: "select all on this page", the number selected, the bulk buttons off while none is.
  const all = document.getElementById("select-all");
  const bulk = document.getElementById("bulk-form");
  if (bulk) {
    const boxes = () => Array.from(bulk.querySelectorAll("input[name=ids]"));
    const count = document.getElementById("selected-count");
    const update = () => {
      const n = boxes().filter((b) => b.checked).length;
      if (count) count.textContent = n ? `${n} selected` : "none selected";
      bulk.querySelectorAll("button[name=decision]").forEach((b) => { b.disabled = n === 0; });
      if (all) { all.checked = n > 0 && n === boxes().length; all.indeterminate = n > 0 && n < boxes().length; }
    };
    if (all) all.addEventListener("change", () => { boxes().forEach((b) => { b.checked = all.checked; }); update(); });
    bulk.addEventListener("change", (e) => { if (e.target.name === "ids") update(); });
    update();
  }
  // A heatmap thumbnail an item lacks is hidden rather than shown broken.
  document.querySelectorAll("img.heat").forEach((img) => img.addEventListener("error", () => { img.hidden = true; }));
})();
