// Confirmation before destructive forms: the text comes from data-confirm, never from
// inline handlers (which would run names and emails as code).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Drag and drop in the rule builder: dropping a rule card or a condition row on a sibling
// posts the move as the form's action; the server reorders and sends back the builder.
// The ↑ ↓ buttons do the same from the keyboard.
let dragged = null;
document.addEventListener("dragstart", (event) => {
  const item = event.target.closest ? event.target.closest("[data-move]") : null;
  if (!item) return;
  dragged = item;
  item.classList.add("dragging");
  event.dataTransfer.setDragImage(item, 12, 12);
  event.dataTransfer.effectAllowed = "move";
  event.dataTransfer.setData("text/plain", item.dataset.move);
  event.stopPropagation();
});
document.addEventListener("dragend", () => {
  document.querySelectorAll(".dragging, .drop-target").forEach((el) => el.classList.remove("dragging", "drop-target"));
  dragged = null;
});
function dropTarget(event) {
  if (!dragged || !event.target.closest) return null;
  let target = event.target.closest("[data-move]");
  while (target && target.parentElement !== dragged.parentElement) {
    target = target.parentElement ? target.parentElement.closest("[data-move]") : null;
  }
  return target && target !== dragged ? target : null;
}
document.addEventListener("dragover", (event) => {
  const target = dropTarget(event);
  if (!target) return;
  event.preventDefault();
  document.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
  target.classList.add("drop-target");
});
document.addEventListener("drop", (event) => {
  const target = dropTarget(event);
  if (!target) return;
  event.preventDefault();
  const form = dragged.closest("form");
  const action = form.querySelector("#builder-drop-action");
  const to = Array.prototype.indexOf.call(target.parentElement.children, target);
  action.value = dragged.dataset.move + ":" + to;
  form.requestSubmit();
});

// A select that shows another view as soon as it changes (the fulfilment queue's location).
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});
