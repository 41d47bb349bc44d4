// Staff forms that take a while (cutting a release, sending a request): once sent,
// the page says it is working and the form cannot be sent a second time.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form[data-working]");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent") === "1") {
        event.preventDefault(); // a second press while the first is at work
        return;
      }
      var submitter = event.submitter;
      if (submitter && submitter.getAttribute("data-quick") !== null) return; // a quick check
      form.setAttribute("data-sent", "1");
      form.setAttribute("aria-busy", "true");
      var status = document.getElementById(form.getAttribute("data-status"));
      if (status) {
        status.textContent = form.getAttribute("data-working");
        status.hidden = false;
      }
      // Disabled after the browser has taken the pressed button's value.
      window.setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) {
          b.disabled = true;
          b.setAttribute("aria-disabled", "true");
        });
      }, 0);
    });
  });
})();
