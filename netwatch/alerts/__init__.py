"""Alerts: the alert record every sink is built from, and the router that de-duplicates them."""
