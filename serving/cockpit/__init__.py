"""The CSM cockpit: server-rendered pages over the same service the API answers from (`/ui`)."""
