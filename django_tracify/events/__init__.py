"""Events: the body Tracify receives, built and validated, with no database and no network.

In order: the context an event is built from (context: hashed identity, URL, origin, referer),
identity hashing (identity), a shop's order read into the purchase fields (orders), each field
validated and formatted (values), and one builder per event type (builders).
"""
