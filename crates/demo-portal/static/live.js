// The customer watching: while support is in the account, say who and what they are
// doing, live, from actas's activity stream (relayed by the portal at /access/live, which
// holds the app key). Loaded from 'self', as the CSP requires.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("support-live");
  if (!box || !window.EventSource) return;
  const stream = new EventSource(box.dataset.live);
  stream.addEventListener("activity", (m) => {
    let a;
    try { a = JSON.parse(m.data); } catch (_) { return; }
    if (a.kind === "session.ended") {
      box.textContent = a.summary + ".";
      box.className = "live ended";
      box.hidden = false;
    } else if (a.in_session && a.staff) {
      box.textContent = a.staff + " from support is in your account now" + (a.doing ? " — " + a.doing : "") + ".";
      box.className = "live on";
      box.hidden = false;
    }
  });
});
