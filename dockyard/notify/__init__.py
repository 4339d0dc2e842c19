"""Notifications: Distribution's webhook events, written to a durable outbox in the
transaction of the change they describe and delivered by one process at a time.

``events`` builds Distribution's events; ``recorder`` turns the store's changes into them,
for each endpoint that wants them; ``wrappers`` wrap the use cases so that every push,
pull, mount and delete is recorded without a handler knowing; ``delivery`` sends them.
"""
