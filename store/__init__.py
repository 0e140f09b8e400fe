"""The store's two halves, one floor: the Delta tables (`store.delta`, with the plans and gauges tables
beside them) and the decision log (`store.decision_log`, with its migrations), the transactional record of
what the API answered and the actions, feedback, keys and deliveries it recorded. Everything above reads
and writes the store through here; it imports only `core`."""
