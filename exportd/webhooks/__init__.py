"""Webhooks: tenants' endpoints told when an export finishes, signed per Standard Webhooks."""
