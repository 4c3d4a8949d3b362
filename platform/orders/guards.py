"""Who may do what with orders: take them (create, cancel, release, resolve tasks) and handle
fulfilments (a location's staff too)."""

from core.auth import requires

TAKERS = ("owner", "admin", "customer_service")
HANDLERS = ("owner", "admin", "customer_service", "store_associate")
take_orders = requires(*TAKERS)
handle_fulfilments = requires(*HANDLERS)
