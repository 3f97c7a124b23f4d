"""Outgoing webhooks for integrators: endpoints, events with stable ids, signed deliveries
(Standard Webhooks) with retries, a delivery log and automatic disabling."""
