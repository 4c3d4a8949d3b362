"""Billing: versioned plans (three seeded), each company's billing account and periods, invoices
and credit notes that nothing may edit once issued, numbering counters, the Stripe events
received, the usage rows that meter work, and where each company stands with its invoices.

Every existing company starts on the default plan's trial, from now.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 02:53:52
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.settings import get_settings
from core.tenancy import rls_statements, sweeper_statements

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('invoice_counters',
    sa.Column('issuer', sa.String(length=64), nullable=False),
    sa.Column('series', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('issuer', 'series', 'year', name=op.f('pk_invoice_counters'))
    )
    op.create_table('plans',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('base_fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('trial_days', sa.Integer(), nullable=False),
    sa.Column('dimensions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint('base_fee_minor >= 0', name=op.f('ck_plans_base_fee_not_negative')),
    sa.CheckConstraint('trial_days BETWEEN 0 AND 365', name=op.f('ck_plans_trial_days_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('code', 'version', name=op.f('uq_plans_code_version'))
    )
    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('company_id', sa.Uuid(), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )
    op.create_table('billing_accounts',
    sa.Column('plan_code', sa.String(length=40), nullable=False),
    sa.Column('next_plan_code', sa.String(length=40), nullable=True),
    sa.Column('trial_ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('address_line1', sa.String(length=200), nullable=False),
    sa.Column('address_line2', sa.String(length=200), nullable=False),
    sa.Column('postcode', sa.String(length=20), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('billing_email', sa.String(length=320), nullable=False),
    sa.Column('vat_number', sa.String(length=20), nullable=True),
    sa.Column('vat_check', sa.String(length=20), nullable=True),
    sa.Column('vat_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('vat_consultation', sa.String(length=100), nullable=True),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('payment_method_id', sa.String(length=255), nullable=True),
    sa.Column('card_brand', sa.String(length=20), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('card_expires', sa.String(length=7), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_billing_accounts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_billing_accounts')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_billing_accounts_tenant_id'))
    )
    op.create_table('billing_periods',
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('trial', sa.Boolean(), nullable=False),
    sa.Column('plans', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('usage', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('invoice_id', sa.Uuid(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_billing_periods_status_known')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_billing_periods_ends_after_start')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_billing_periods_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_billing_periods')),
    sa.UniqueConstraint('tenant_id', 'starts_at', name=op.f('uq_billing_periods_tenant_id_starts_at'))
    )
    op.create_index('ix_billing_periods_open', 'billing_periods', ['tenant_id', 'ends_at'], unique=False, postgresql_where=sa.text("status = 'open'"))
    op.create_table('invoices',
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('series', sa.String(length=8), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_id', sa.Uuid(), nullable=True),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('credited_invoice_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('issuer', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('customer', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('plan', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal_minor', sa.BigInteger(), nullable=False),
    sa.Column('vat_rate_bp', sa.Integer(), nullable=False),
    sa.Column('vat_minor', sa.BigInteger(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('vat_treatment', sa.String(length=20), nullable=False),
    sa.Column('vat_mentions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('local_only', sa.Boolean(), nullable=False),
    sa.Column('credited_minor', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('first_failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("kind IN ('invoice', 'credit_note')", name=op.f('ck_invoices_kind_known')),
    sa.CheckConstraint("status IN ('open', 'paid', 'credited', 'applied', 'issued', 'refunded')", name=op.f('ck_invoices_status_known')),
    sa.CheckConstraint('credited_minor BETWEEN 0 AND total_minor', name=op.f('ck_invoices_credited_within_total')),
    sa.CheckConstraint('subtotal_minor >= 0 AND vat_minor >= 0', name=op.f('ck_invoices_amounts_not_negative')),
    sa.CheckConstraint('total_minor = subtotal_minor + vat_minor', name=op.f('ck_invoices_total_adds_up')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_invoices_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('tenant_id', 'number', name=op.f('uq_invoices_tenant_id_number')),
    sa.UniqueConstraint('tenant_id', 'period_id', 'kind', name=op.f('uq_invoices_tenant_id_period_id_kind'))
    )
    op.create_index('ix_invoices_collect', 'invoices', ['tenant_id', 'next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'open' AND next_attempt_at IS NOT NULL"))
    op.create_index('ix_invoices_issued', 'invoices', ['tenant_id', 'issued_at'], unique=False)
    op.create_table('usage_events',
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=False),
    sa.Column('fact_key', sa.String(length=200), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_usage_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_usage_events')),
    sa.UniqueConstraint('tenant_id', 'dimension', 'fact_key', name=op.f('uq_usage_events_tenant_id_dimension_fact_key'))
    )
    op.create_index('ix_usage_events_period', 'usage_events', ['tenant_id', 'dimension', 'occurred_at', 'subject'], unique=False)
    op.create_table('invoice_lines',
    sa.Column('invoice_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_price_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'invoice_id'], ['invoices.tenant_id', 'invoices.id'], name=op.f('fk_invoice_lines_tenant_id_invoice_id_invoices'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_invoice_lines_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_invoice_lines')),
    sa.UniqueConstraint('tenant_id', 'invoice_id', 'position', name=op.f('uq_invoice_lines_tenant_id_invoice_id_position'))
    )
    op.add_column('tenants', sa.Column('billing_standing', sa.String(length=20), server_default='good', nullable=False))
    op.create_check_constraint("billing_standing_known", "tenants",
                               "billing_standing IN ('good', 'payment_failed', 'past_due', 'restricted', 'intake_refused')")
    for table in ("billing_accounts", "billing_periods", "invoices", "invoice_lines", "usage_events"):
        for statement in rls_statements(table):
            op.execute(statement)
    role = get_settings().sweeper_db_role
    for statement in (sweeper_statements("billing_periods", role, columns=["tenant_id", "status", "ends_at"],
                                         due="status = 'open'", name="open")
                      + sweeper_statements("invoices", role,
                                           columns=["tenant_id", "kind", "status", "local_only", "next_attempt_at",
                                                    "first_failed_at", "payment_intent_id", "last_error",
                                                    "updated_at"],
                                           due="status IN ('open', 'issued') OR (status = 'credited' "
                                               "AND payment_intent_id IS NOT NULL)", name="unpaid")):
        op.execute(statement)
    for statement in IMMUTABLE:
        op.execute(statement)
    _seed_plans()
    _accounts_for_existing_companies()


# What an issued invoice or credit note says can never change, nor can it be deleted: only its
# collection moves (status, attempts, payment, the amount credited). Corrections are credit notes.
IMMUTABLE = [
    """
    CREATE FUNCTION billing_document_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'an issued % cannot be deleted: issue a credit note', TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_TABLE_NAME = 'invoice_lines' THEN
            RAISE EXCEPTION 'an issued invoice line is never edited: issue a credit note'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF (NEW.kind, NEW.number, NEW.series, NEW.year, NEW.sequence, NEW.issued_at, NEW.period_id,
            NEW.period_start, NEW.period_end, NEW.credited_invoice_id, NEW.reason, NEW.issuer, NEW.customer,
            NEW.plan, NEW.currency, NEW.subtotal_minor, NEW.vat_rate_bp, NEW.vat_minor, NEW.total_minor,
            NEW.vat_treatment, NEW.vat_mentions, NEW.local_only)
           IS DISTINCT FROM
           (OLD.kind, OLD.number, OLD.series, OLD.year, OLD.sequence, OLD.issued_at, OLD.period_id,
            OLD.period_start, OLD.period_end, OLD.credited_invoice_id, OLD.reason, OLD.issuer, OLD.customer,
            OLD.plan, OLD.currency, OLD.subtotal_minor, OLD.vat_rate_bp, OLD.vat_minor, OLD.total_minor,
            OLD.vat_treatment, OLD.vat_mentions, OLD.local_only) THEN
            RAISE EXCEPTION 'an issued invoice is never edited: issue a credit note'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices "
    "FOR EACH ROW EXECUTE FUNCTION billing_document_immutable()",
    "CREATE TRIGGER invoice_lines_immutable BEFORE UPDATE OR DELETE ON invoice_lines "
    "FOR EACH ROW EXECUTE FUNCTION billing_document_immutable()",
    # A line is written only with its invoice, in the transaction that issues it: the invoice's row
    # must carry this transaction's id (its xmin). Issuing runs outside savepoints (a row written in
    # one carries the savepoint's own id).
    """
    CREATE FUNCTION invoice_line_issued_with_its_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM invoices WHERE tenant_id = NEW.tenant_id AND id = NEW.invoice_id
                       AND xmin = pg_current_xact_id()::xid) THEN
            RAISE EXCEPTION 'a line is never added to an issued invoice: issue a credit note'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER invoice_lines_with_their_invoice BEFORE INSERT ON invoice_lines "
    "FOR EACH ROW EXECUTE FUNCTION invoice_line_issued_with_its_invoice()",
]

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
PLANS = [
    {"code": "starter", "name": "Starter", "position": 1, "is_default": True, "base_fee_minor": 3900,
     "description": "One shop and a store or two.",
     "dimensions": {"orders": {"included": 500, "tiers": [{"up_to": 5000, "unit_minor": 20},
                                                          {"up_to": None, "unit_minor": 12}]},
                    "locations": {"included": 2, "tiers": [{"up_to": None, "unit_minor": 1500}]}}},
    {"code": "growth", "name": "Growth", "position": 2, "is_default": False, "base_fee_minor": 14900,
     "description": "Several channels, a warehouse and a network of stores.",
     "dimensions": {"orders": {"included": 5000, "tiers": [{"up_to": 50000, "unit_minor": 8},
                                                           {"up_to": None, "unit_minor": 5}]},
                    "locations": {"included": 10, "tiers": [{"up_to": 50, "unit_minor": 1000},
                                                            {"up_to": None, "unit_minor": 700}]}}},
    {"code": "scale", "name": "Scale", "position": 3, "is_default": False, "base_fee_minor": 49900,
     "description": "Hundreds of stores and marketplaces at volume.",
     "dimensions": {"orders": {"included": 25000, "tiers": [{"up_to": 250000, "unit_minor": 4},
                                                            {"up_to": None, "unit_minor": 3}]},
                    "locations": {"included": 50, "tiers": [{"up_to": None, "unit_minor": 600}]}}},
]


def _seed_plans() -> None:
    insert = sa.text(
        "INSERT INTO plans (id, code, version, name, description, currency, base_fee_minor, trial_days, dimensions, "
        "effective_from, is_default, position) VALUES (:id, :code, 1, :name, :description, 'EUR', :base_fee_minor, "
        "14, CAST(:dimensions AS jsonb), :since, :is_default, :position)")
    for plan in PLANS:
        op.get_bind().execute(insert, {**plan, "id": uuid.uuid4(), "dimensions": json.dumps(plan["dimensions"]),
                                       "since": SINCE})


def _accounts_for_existing_companies() -> None:
    """Each company already signed up: the default plan, its trial from now to the local midnight
    after its last day (periods meet at the company's midnights), and that trial as its first
    period (in its own row-level security scope, as the owner may be subject to it)."""
    connection = op.get_bind()
    now = datetime.now(UTC)
    plan = connection.execute(sa.text("SELECT id, code, version FROM plans WHERE is_default")).one()
    for tenant_id, country, timezone in connection.execute(
            sa.text("SELECT id, country, timezone FROM tenants ORDER BY id")).all():
        trial_end = _midnight_after(now, 14, timezone)
        connection.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        connection.execute(sa.text(
            "INSERT INTO billing_accounts (tenant_id, id, plan_code, trial_ends_at, legal_name, address_line1, "
            "address_line2, postcode, city, country, billing_email, created_at, updated_at) "
            "SELECT id, :id, :plan, :trial_end, name, '', '', '', '', :country, '', :now, :now FROM tenants "
            "WHERE id = :tenant"),
            {"id": uuid.uuid4(), "plan": plan.code, "trial_end": trial_end, "country": country, "now": now,
             "tenant": tenant_id})
        connection.execute(sa.text(
            "INSERT INTO billing_periods (tenant_id, id, starts_at, ends_at, status, trial, plans) "
            "VALUES (:tenant, :id, :now, :trial_end, 'open', true, CAST(:plans AS jsonb))"),
            {"tenant": tenant_id, "id": uuid.uuid4(), "now": now, "trial_end": trial_end,
             "plans": json.dumps([{"plan_id": str(plan.id), "code": plan.code, "version": plan.version,
                                   "from": now.isoformat()}])})
    connection.execute(sa.text("SELECT set_config('app.tenant_id', '', true)"))


def _midnight_after(start: datetime, days: int, timezone: str) -> datetime:
    """The local midnight at or after the same time of day ``days`` days after ``start``."""
    zone = ZoneInfo(timezone)
    later = start.astimezone(zone) + timedelta(days=days)
    day = later.date() if later.time() == time(0) else later.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS invoice_lines_immutable ON invoice_lines")
    op.execute("DROP TRIGGER IF EXISTS invoices_immutable ON invoices")
    op.execute("DROP FUNCTION IF EXISTS billing_document_immutable()")
    op.execute("DROP TRIGGER IF EXISTS invoice_lines_with_their_invoice ON invoice_lines")
    op.execute("DROP FUNCTION IF EXISTS invoice_line_issued_with_its_invoice()")
    op.drop_column('tenants', 'billing_standing')
    op.drop_table('invoice_lines')
    op.drop_index('ix_usage_events_period', table_name='usage_events')
    op.drop_table('usage_events')
    op.drop_index('ix_invoices_issued', table_name='invoices')
    op.drop_index('ix_invoices_collect', table_name='invoices', postgresql_where=sa.text("status = 'open' AND next_attempt_at IS NOT NULL"))
    op.drop_table('invoices')
    op.drop_index('ix_billing_periods_open', table_name='billing_periods', postgresql_where=sa.text("status = 'open'"))
    op.drop_table('billing_periods')
    op.drop_table('billing_accounts')
    op.drop_table('stripe_events')
    op.drop_table('plans')
    op.drop_table('invoice_counters')
