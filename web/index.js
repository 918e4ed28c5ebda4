/* Index page: fill the embed snippet with this server's address. */
"use strict";
(function () {
  function init() {
    var bid = new URLSearchParams(location.search).get("bid");
    if (bid && /^[A-Za-z0-9_.@-]{1,64}$/.test(bid)) {
      document.getElementById("demoLink").setAttribute("href", "/chat/" + encodeURIComponent(bid));
      document.getElementById("demoBid").textContent = bid;
    } else bid = "demo";
    document.getElementById("snippet").textContent =
      '<script src="' + location.origin + '/widget.js" data-bid="' + bid + '" async></script>';
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
