// The report pages' "Print" button: shown only where scripts run, it opens the browser's print dialogue
// (static/hitl/print.css lays the page out as a report). A file of its own: the policy refuses inline script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
});
