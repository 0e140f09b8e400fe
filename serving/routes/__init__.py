"""The API's routers, one per concern: scores, actions, interventions and feedback, operations."""
