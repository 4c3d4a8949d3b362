// The Billing page's card form with Stripe Elements: the card goes from the browser to Stripe,
// never through the platform. Opening the form asks the platform for a SetupIntent; once Stripe
// confirms it, its id is posted back (an ordinary form, with its CSRF token) to store the card.
(function () {
  "use strict";
  function start() {
    const box = document.getElementById("card-element");
    const form = document.getElementById("card-elements-form");
    if (!box || !form || typeof window.Stripe !== "function") return;
    const stripe = window.Stripe(box.dataset.publishableKey);
    const card = stripe.elements().create("card");
    const error = document.getElementById("card-element-error");
    const save = document.getElementById("card-element-save");
    const token = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrftoken"];
    let secret = null;
    form.addEventListener("toggle", async function () {
      if (!form.open || secret) return;
      card.mount(box);
      const answer = await fetch("/app/billing/card/intent", {method: "POST", headers: {"x-csrftoken": token}});
      if (!answer.ok) { error.textContent = "The card form could not start. Reload the page and try again."; return; }
      secret = (await answer.json()).client_secret;
    });
    save.addEventListener("click", async function () {
      if (!secret) return;
      save.setAttribute("aria-busy", "true");
      const result = await stripe.confirmCardSetup(secret, {payment_method: {card: card}});
      save.removeAttribute("aria-busy");
      if (result.error) { error.textContent = result.error.message; return; }
      const setup = document.getElementById("card-setup-form");
      setup.elements.setup_intent.value = result.setupIntent.id;
      setup.submit();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
