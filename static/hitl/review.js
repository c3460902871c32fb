// Reviewer pages: label shortcuts (1-9), Ctrl+Enter submits, a timer that fills the time spent, one submit
// per click (a double click or a repeated Ctrl+Enter sends the form once; the server is idempotent anyway),
// and "N" on the queue page asks for the next case. No dependencies, served from our own static files.
(function () {
  "use strict";

  function isTyping(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "radio") || target.isContentEditable;
  }

  function formatSeconds(total) {
    var minutes = Math.floor(total / 60);
    var seconds = total % 60;
    return minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
  }

  var form = document.getElementById("review-form");
  if (form) {
    var started = Date.now();
    var offset = parseInt(form.getAttribute("data-elapsed") || "0", 10) || 0;
    var field = document.getElementById("id_time_spent_seconds");
    var display = document.getElementById("timer");
    var elapsed = function () { return offset + Math.floor((Date.now() - started) / 1000); };
    var tick = function () {
      var seconds = elapsed();
      if (display) display.textContent = formatSeconds(seconds);
      if (field) field.value = String(seconds);
    };
    tick();
    window.setInterval(tick, 1000);

    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) { event.preventDefault(); return; }
      tick();
      sent = true;
      var buttons = form.querySelectorAll("[data-submit]");
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].disabled = true;
        buttons[i].textContent = "Sending…";
      }
    });

    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        if (typeof form.requestSubmit === "function") form.requestSubmit(); else form.submit();
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
      if (event.key >= "1" && event.key <= "9") {
        var choice = form.querySelector('input[data-shortcut="' + event.key + '"]');
        if (choice) {
          event.preventDefault();
          choice.checked = true;
          choice.focus();
        }
      }
    });
  }

  var nextForm = document.getElementById("next-form");
  if (nextForm) {
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
      if (event.key === "n" || event.key === "N") {
        event.preventDefault();
        nextForm.submit();
      }
    });
  }
})();
