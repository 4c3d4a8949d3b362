"""Imports every module that declares actors or periodic jobs (worker, scheduler, web)."""

from billing import tasks as billing_tasks
from core import tasks as core_tasks
from core import webhooks as webhook_tasks
from inventory import tasks as inventory_tasks
from marketing import campaign_sending
from marketing import pricing as marketing_pricing
from orders import payments as payment_tasks
from orders import tasks as order_tasks
from support import tasks as support_tasks

__all__ = ["billing_tasks", "campaign_sending", "core_tasks", "inventory_tasks", "marketing_pricing", "order_tasks",
           "payment_tasks", "support_tasks", "webhook_tasks"]
