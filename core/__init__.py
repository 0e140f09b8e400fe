"""The floor every other floor stands on: settings, the telemetry contract, the action catalogue and its
value, the Spark session, the errors. It imports nothing of Retain's above it."""
