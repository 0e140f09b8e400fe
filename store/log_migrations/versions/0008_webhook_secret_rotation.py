"""Standard Webhooks signatures and secret rotation: the secrets a rotation replaced, each signing beside
the current one until its overlap ends, and every secret in the Standard Webhooks form.

A secret from before (`whsec_` and URL-safe base64, whose whole string keyed the HMAC) becomes
`whsec_` and the base64 of that string: the same key bytes, in the form every Standard Webhooks library
decodes. Such a webhook is marked `legacy_signature`, so its deliveries still carry `Retain-Signature`
until a rotation replaces the secret. A downgrade turns the marked secrets back; a secret made after this
revision signs differently under the earlier code, so its receivers need it rotated again.

Revision ID: 0008
"""

import base64

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

_WEBHOOKS = sa.table(
    "webhooks", sa.column("webhook_id"), sa.column("secret"), sa.column("legacy_signature", sa.Boolean)
)


def upgrade() -> None:
    op.add_column(
        "webhooks", sa.Column("legacy_signature", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "webhook_retiring_secrets",
        sa.Column("webhook_id", sa.String, primary_key=True),
        sa.Column("secret", sa.String, primary_key=True),
        sa.Column("legacy_signature", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    conn, w = op.get_bind(), _WEBHOOKS.c
    for webhook_id, secret in conn.execute(sa.select(w.webhook_id, w.secret)).all():
        standard = "whsec_" + base64.b64encode(secret.encode()).decode()
        update = _WEBHOOKS.update().where(w.webhook_id == webhook_id)
        conn.execute(update.values(secret=standard, legacy_signature=True))


def downgrade() -> None:
    conn, w = op.get_bind(), _WEBHOOKS.c
    marked = sa.select(w.webhook_id, w.secret).where(w.legacy_signature == sa.true())
    for webhook_id, secret in conn.execute(marked).all():
        legacy = base64.b64decode(secret.removeprefix("whsec_")).decode()
        conn.execute(_WEBHOOKS.update().where(w.webhook_id == webhook_id).values(secret=legacy))
    op.drop_table("webhook_retiring_secrets")
    op.drop_column("webhooks", "legacy_signature")
