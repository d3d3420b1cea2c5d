"""Capture: what a shop's requests and code say happened, turned into track_* calls.

In order: the middleware (middleware) builds the request's context lazily (context: the client
IP behind trusted proxies in client_ip, consent, the landing URL parameters in landing), skips
crawlers (bots) and, once the response is sent, records the pageview; views, template tags and
the app's own signals (receivers) call the track_* functions (tracking), which build the event
(django_tracify.events) and store it (django_tracify.outbox), deferred to a worker thread when
called from an event loop (event_loop).
"""
