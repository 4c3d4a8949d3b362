// Pre-fill the time zone from the browser unless the form is being shown again with a choice.
document.addEventListener("DOMContentLoaded", () => {
  const select = document.querySelector('select[name="timezone"][data-prefill="yes"]');
  if (!select) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && [...select.options].some((o) => o.value === zone)) select.value = zone;
});

// Choosing a country suggests its currency, until the currency is chosen by hand.
document.addEventListener("DOMContentLoaded", () => {
  const country = document.querySelector('select[name="country"]');
  const currency = document.querySelector('select[name="currency"]');
  if (!country || !currency) return;
  let chosen = Boolean(currency.value);
  currency.addEventListener("change", () => { chosen = true; });
  country.addEventListener("change", () => {
    const suggested = country.selectedOptions[0] && country.selectedOptions[0].dataset.currency;
    if (!chosen && suggested && [...currency.options].some((o) => o.value === suggested)) currency.value = suggested;
  });
});
