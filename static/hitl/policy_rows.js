// The routing policy's rule and label-threshold rows: an "Add" button that appends an empty row from the
// formset's template. Without this script the page still works: it always offers a few empty rows.
"use strict";
{
  for (const button of document.querySelectorAll("button[data-add-row]")) {
    const prefix = button.dataset.addRow;
    const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
    const body = document.querySelector(`tbody[data-rows="${prefix}"]`);
    const template = document.getElementById(`${prefix}-empty-row`);
    if (!total || !body || !template) continue;
    button.hidden = false;
    button.addEventListener("click", () => {
      const index = total.value;
      const row = template.content.cloneNode(true);
      for (const element of row.querySelectorAll("[id], [name], [for]")) {
        for (const attribute of ["id", "name", "for"]) {
          const value = element.getAttribute(attribute);
          if (value) element.setAttribute(attribute, value.replaceAll("__prefix__", index));
        }
      }
      body.appendChild(row);
      total.value = Number(index) + 1;
      body.lastElementChild.querySelector("select, input")?.focus();
    });
  }
}
