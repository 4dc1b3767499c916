// The actas banner: a live countdown, and when the session ends elsewhere (time limit,
// revoked consent, ended in another tab) the page is replaced by a notice.
(function () {
  var banner = document.getElementById("actas-banner");
  if (!banner) return;
  var ends = Number(banner.getAttribute("data-ends"));
  var left = document.getElementById("actas-left");
  function tick() {
    var s = Math.max(0, Math.floor((ends - Date.now()) / 1000));
    left.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + " left";
  }
  function ended(why) {
    document.body.innerHTML = "";
    var main = document.createElement("main");
    main.className = "actas-notice";
    var h = document.createElement("h1");
    h.textContent = "This support session has ended";
    var p = document.createElement("p");
    p.textContent = why || "Start a new session from the actas console if you still need access.";
    main.appendChild(h); main.appendChild(p);
    document.body.appendChild(main);
  }
  function poll() {
    fetch("/__actas/status", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (!s.active) { ended(s.message); return; }
        ends = s.ends_at_ms;
      })
      .catch(function () {});
  }
  // Keep the page's own content out from under the banner, however tall it wraps.
  function fit() {
    document.body.style.setProperty("padding-top", banner.offsetHeight + 8 + "px", "important");
  }
  fit();
  window.addEventListener("resize", fit);
  // A page restored from the back-forward cache is one the session served earlier: it is
  // fetched again, so the gateway decides (after End, it refuses).
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) { document.body.style.visibility = "hidden"; location.reload(); }
  });
  tick();
  setInterval(tick, 1000);
  setInterval(poll, 5000);
})();
