// django-celery-beat's periodic task form: say in words what the chosen crontab schedule means, under the crontab
// field's help. The package does this in an inline script, which the CSP refuses; this is the same behaviour as a
// static file, writing text nodes rather than HTML.
"use strict";
{
  const readable = JSON.parse(document.getElementById("readable-crontabs").textContent);
  const crontab = document.getElementById("id_crontab");
  const help = document.querySelector(".field-crontab .help");
  // The read-only "crontab translation" row says the same for the saved schedule only; the help line replaces it.
  const savedTranslation = document.querySelector(".field-crontab_translation");
  if (savedTranslation) savedTranslation.style.display = "none";

  if (crontab && help) {
    const line = document.createElement("div");
    line.id = "crontab-in-words";
    help.appendChild(line);
    const show = () => {
      const words = readable[crontab.value];
      line.textContent = words ? `Translation: ${words}` : "";
    };
    crontab.addEventListener("change", show);
    show();
  }
}
