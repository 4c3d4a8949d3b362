"""Who may change locations, the catalog and stock: owners, admins and merchandisers."""

from core.auth import MERCHANDISERS, requires

manage_stock = requires(*MERCHANDISERS)
UPLOAD_LIMIT = 64 * 1024 * 1024  # stock feeds up to 50 MB, with room for the form around them
