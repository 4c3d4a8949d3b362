// Confirmation before destructive forms: the text comes from data-confirm, never from
// inline handlers (which would run names and emails as code).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});
