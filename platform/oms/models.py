"""Imports every domain's models so that mappers and Alembic see the whole schema."""

from billing import models as billing_models
from core import models as core_models
from core.db import Base
from customers import models as customer_models
from inventory import models as inventory_models
from marketing import models as marketing_models
from orders import models as order_models
from rules import models as rule_models
from support import models as support_models
from tenants import models as tenant_models

metadata = Base.metadata

__all__ = ["billing_models", "core_models", "customer_models", "inventory_models", "marketing_models", "metadata",
           "order_models", "rule_models", "support_models", "tenant_models"]
