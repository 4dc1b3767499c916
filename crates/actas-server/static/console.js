// The only script in the console: a live countdown on the session page. Every step
// works without it.
document.addEventListener("DOMContentLoaded", () => {
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
