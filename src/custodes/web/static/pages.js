// Every page: a table wider than the screen scrolls inside its own frame, and that frame can
// be reached and scrolled with the keyboard (it takes Tab only when it does scroll).
(function () {
  "use strict";
  function mark() {
    Array.prototype.forEach.call(document.querySelectorAll(".table-wrap"), function (w) {
      var scrolls = w.scrollWidth > w.clientWidth + 1;
      if (scrolls && !w.hasAttribute("tabindex")) {
        var cap = w.querySelector("caption");
        var table = w.querySelector("table");
        var name = (cap && cap.textContent.trim()) || (table && table.getAttribute("aria-label")) || "Table";
        w.setAttribute("tabindex", "0");
        w.setAttribute("role", "region");
        w.setAttribute("aria-label", name + " (scrolls sideways)");
      } else if (!scrolls && w.getAttribute("role") === "region") {
        w.removeAttribute("tabindex");
        w.removeAttribute("role");
        w.removeAttribute("aria-label");
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mark);
  else mark();
  window.addEventListener("resize", mark);
  document.addEventListener("toggle", mark, true);
  if (window.MutationObserver) {
    new MutationObserver(function () { mark(); }).observe(document.body, { childList: true, subtree: true });
  }
})();

// Fields whose text is published in the log show, as one types, exactly what the log will read.
(function () {
  "use strict";
  function wire() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-published]"), function (el) {
      var out = document.getElementById(el.id + "-preview");
      if (!out) return;
      var show = function () {
        var text = el.value.trim();
        out.textContent = text ? "The public log will read: \u201c" + text + "\u201d" : "";
      };
      el.addEventListener("input", show);
      show();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
