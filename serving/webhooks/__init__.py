"""Alerts pushed to subscribed webhooks, at least once: subscriptions and the outbox in the decision log's
database (`outbox.py`), what a subscription may hold (`checks.py`), Standard Webhooks signatures and
secrets (`signing.py`) and the worker that delivers (`delivery.py`). docs/methods/webhooks.md is the
receiver's manual."""
