"""Ingestion: files, source adapters and the contract's validation into the store (`ingest.run`)."""
