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
})();
