"""The floor every other layer stands on: settings, the store, the telemetry contract, the action
catalogue and the errors. It imports nothing of Retain's above it."""
