"""The Litestar application factory: each domain contributes its routes."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from core import all_models, all_tasks  # noqa: F401  (mappers and actors must be registered)
from core.auth import AuthMiddleware
from core.db import close_database
from core.logging import RequestLogMiddleware, configure_logging
from core.problems import exception_handlers
from core.redis import close_redis
from core.settings import WEB_DIR, get_settings
from core.templating import template_config


def create_app() -> Litestar:
    from core import http as core_http
    from orders import http as order_http
    from orders import order_http as orders_http
    from orders import payments_http, service_tasks_http, settings_http
    from rules import http as rule_http
    from tenants import http as tenant_http
    from tenants import webhooks_http
    from tenants.auth import principal_from_api_key, principal_from_session

    settings = get_settings()
    secure = settings.public_url.startswith("https://")
    configure_logging(json_logs=settings.log_json, level=settings.log_level)

    async def shutdown() -> None:
        await close_database()
        await close_redis()

    route_handlers: list[Any] = [
        *core_http.route_handlers,
        *tenant_http.route_handlers,
        *webhooks_http.route_handlers,
        *order_http.route_handlers,
        *orders_http.route_handlers,
        *payments_http.route_handlers,
        *service_tasks_http.route_handlers,
        *settings_http.route_handlers,
        *rule_http.route_handlers,
        create_static_files_router(path="/static", directories=[WEB_DIR / "static"], include_in_schema=False,
                                   cache_control=None),
    ]
    return Litestar(
        route_handlers=route_handlers,
        middleware=[RequestLogMiddleware(), AuthMiddleware(principal_from_session, principal_from_api_key)],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="__Host-oms_csrf" if secure else "oms_csrf",
            cookie_secure=secure,
            header_name="x-csrftoken",
            cookie_samesite="lax",
            exclude=["^/api/", "^/healthz$", "^/readyz$"],
        ),
        template_config=template_config(),
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="OMS API",
            version="1",
            path="/api/docs",
            render_plugins=[ScalarRenderPlugin()],
            components=Components(
                security_schemes={"ApiKey": SecurityScheme(type="http", scheme="bearer",
                                                            description="A key from Settings → API keys")}
            ),
            security=[{"ApiKey": []}],
        ),
        on_shutdown=[shutdown],
        request_max_body_size=10 * 1024 * 1024,  # file uploads raise it on their own routes
    )
