"""Monitoring: input drift, realised and estimated performance, what the plans kept, answers and feedback
(`retain monitor`)."""
