// Fill the latitude and longitude fields from a chosen place.
(function () {
  "use strict";
  var select = document.getElementById("place");
  if (!select) return;
  select.addEventListener("change", function () {
    if (!select.value) return;
    var parts = select.value.split(",");
    document.getElementById("lat").value = parts[0];
    document.getElementById("lon").value = parts[1];
  });
})();
