"""Steps that every browser journey takes."""

from __future__ import annotations

from typing import Any


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    """Log in through the login form and land on the console home."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/app")
