"""Helpers shared by the test tiers; test modules import these, never each other."""
