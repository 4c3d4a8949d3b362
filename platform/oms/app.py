"""The Litestar application factory: each domain contributes its routes, and the assembly wires
what a lower domain needs from a higher one (the rules console's ``routing_lab``)."""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import File
from litestar.static_files import create_static_files_router

from core.auth import AuthMiddleware
from core.boundary import InputGuard
from core.db import close_database
from core.live import close_hub
from core.logging import RequestLogMiddleware, configure_logging
from core.problems import exception_handlers
from core.redis import close_redis
from core.settings import WEB_DIR, get_settings
from core.templating import template_config
from oms import actors, models  # noqa: F401  (mappers and actors must be registered)

# The API documentation's viewer, served from our static files (pinned, no CDN: it works offline).
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
FAVICON = WEB_DIR / "static" / "favicon.ico"


@get("/favicon.ico", include_in_schema=False, cache_control=CacheControlHeader(max_age=86400, public=True),
     sync_to_thread=False)
def favicon() -> File:
    """Browsers ask for it at the root whatever the page says."""
    return File(FAVICON, media_type="image/x-icon", content_disposition_type="inline")


def api_docs() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_UI}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_UI}/swagger-ui-standalone-preset.js",
        favicon="<link rel='icon' href='/favicon.ico'>",
        path="/",
    )


def create_app() -> Litestar:
    from billing import http as billing_http
    from billing import restrictions, stripe_webhooks
    from core import http as kernel_http
    from dashboard import http as dashboard_http
    from inventory import api as inventory_api
    from inventory import pages as inventory_pages
    from marketing import http as marketing_http
    from orders import amendment_api, amendment_pages
    from orders import api as orders_api
    from orders import pages as orders_pages
    from orders.directory import DIRECTORY
    from orders.simulation import LAB
    from rules import api as rules_api
    from rules import pages as rules_pages
    from support import http as support_http
    from tenants import api as tenants_api
    from tenants import pages as tenants_pages
    from tenants.auth import principal_from_api_key, principal_from_session

    settings = get_settings()
    secure = settings.public_url.startswith("https://")
    configure_logging(json_logs=settings.log_json, level=settings.log_level)

    async def shutdown() -> None:
        await close_hub()
        await close_database()
        await close_redis()

    route_handlers: list[Any] = [
        *kernel_http.route_handlers,
        *tenants_api.route_handlers, *tenants_pages.route_handlers,
        *dashboard_http.route_handlers,
        *inventory_api.route_handlers, *inventory_pages.route_handlers,
        *orders_api.route_handlers, *orders_pages.route_handlers,
        *amendment_api.route_handlers, *amendment_pages.route_handlers,
        *rules_api.route_handlers, *rules_pages.route_handlers,
        *support_http.route_handlers,
        *marketing_http.route_handlers,
        *billing_http.route_handlers, *stripe_webhooks.route_handlers,
        favicon,
        create_static_files_router(path="/static", directories=[WEB_DIR / "static"], include_in_schema=False,
                                   cache_control=None),
    ]
    app = Litestar(
        route_handlers=route_handlers,
        # Lower domains can't import higher ones: what they show of them is provided here.
        dependencies={"routing_lab": Provide(lambda: LAB, sync_to_thread=False),
                      "directory": Provide(lambda: DIRECTORY, sync_to_thread=False)},
        middleware=[RequestLogMiddleware(), InputGuard(),
                    AuthMiddleware(principal_from_session, principal_from_api_key)],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="__Host-oms_csrf" if secure else "oms_csrf",
            cookie_secure=secure,
            header_name="x-csrftoken",
            cookie_samesite="lax",
            exclude=["^/api/", "^/healthz$", "^/readyz$", "^/webhooks/stripe$",
                     "^/unsubscribe/"],  # the signed token is the proof; mail clients POST it in one click
        ),
        template_config=template_config(),
        exception_handlers=exception_handlers,
        # An unpaid account's set-up is read-only (402), after the guards, before the handler.
        before_request=restrictions.enforce,
        openapi_config=OpenAPIConfig(
            title="OMS API",
            version="1",
            path="/api/docs",
            render_plugins=[api_docs()],
            components=Components(
                security_schemes={"ApiKey": SecurityScheme(type="http", scheme="bearer",
                                                            description="A key from Settings → API keys")}
            ),
            security=[{"ApiKey": []}],
        ),
        on_shutdown=[shutdown],
        request_max_body_size=10 * 1024 * 1024,  # file uploads raise it on their own routes
    )
    # What the console's layout shows of a higher domain (billing's banner), given to the templates here.
    cast(JinjaTemplateEngine, app.template_engine).engine.globals.update(billing_http.template_globals())
    return app
