// The console's only script. Every step works without it: it shows times on the
// reader's own clock (the server writes them in UTC) and counts down a session.
document.addEventListener("DOMContentLoaded", () => {
  const clock = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  });
  for (const t of document.querySelectorAll("time[datetime]")) {
    const at = new Date(t.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      t.title = t.textContent;
      t.textContent = clock.format(at);
    }
  }
  const el = document.getElementById("countdown");
  if (!el) return;
  const expires = Number(el.dataset.expires);
  const tick = () => {
    const left = Math.max(0, Math.floor((expires - Date.now()) / 1000));
    const m = Math.floor(left / 60), s = String(left % 60).padStart(2, "0");
    el.textContent = left > 0 ? `${m}:${s}` : "ended";
  };
  tick();
  setInterval(tick, 1000);
});
