"""The model registry: register, gate, promote and roll back `@champion`."""
