"""Retain: churn prediction and next-best action for B2B SaaS customer success."""

__version__ = "0.1.0"
