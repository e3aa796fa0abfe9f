/* The clerk console's live list: countdowns to each offer's deadline, the new-order badge, and a chime. */
(function () {
  "use strict";
  var lastCount = null;
  var audio = null;

  // Browsers only play sound after the page was touched once; the first tap unlocks it.
  document.addEventListener("click", function () {
    if (!audio && window.AudioContext) audio = new window.AudioContext();
  }, {once: true});

  function chime() {
    if (!audio) return;
    [0, 0.18].forEach(function (start) {
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, audio.currentTime + start);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + start + 0.15);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(audio.currentTime + start); osc.stop(audio.currentTime + start + 0.16);
    });
    if (navigator.vibrate) navigator.vibrate(200);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.floor((Date.parse(el.dataset.deadline) - now) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = left ? (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s : "00:00";
      el.classList.toggle("urgent", left < 600);
    });
  }

  function updateBadge() {
    var holder = document.getElementById("new-count");
    var badge = document.getElementById("new-badge");
    if (!holder || !badge) return;
    var count = parseInt(holder.dataset.count || "0", 10);
    badge.textContent = count;
    badge.hidden = count === 0;
    document.title = document.title.replace(/^\(\d+\) /, "");
    if (count) document.title = "(" + count + ") " + document.title;
    if (lastCount !== null && count > lastCount) chime();
    lastCount = count;
  }

  // On a narrow phone the tab bar scrolls sideways: keep the open tab in sight.
  function showActiveTab() {
    var tabs = document.querySelector(".tabs"), active = tabs && tabs.querySelector("a.active");
    if (active && active.offsetLeft + active.offsetWidth > tabs.clientWidth) {
      tabs.scrollLeft = active.offsetLeft + active.offsetWidth - tabs.clientWidth;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    showActiveTab(); tick(); updateBadge(); setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", function () { tick(); updateBadge(); });
})();
