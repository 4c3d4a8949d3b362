// Pre-fill the time zone from the browser unless the form is being shown again with a choice.
document.addEventListener("DOMContentLoaded", () => {
  const select = document.querySelector('select[name="timezone"][data-prefill="yes"]');
  if (!select) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && [...select.options].some((o) => o.value === zone)) select.value = zone;
});
