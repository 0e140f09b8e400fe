"""The autopilot: the plan's autonomous actions executed with no CSM, under guardrails
(docs/methods/autopilot.md)."""
