"""Delivery: the outbox flushed to Tracify, from tracify_flush, Celery or django.tasks.

In order: a flush pass (flushing) claims due rows (django_tracify.outbox), splits them into
batches by body size (batching), posts each batch with the Tracify HTTP client (client) under a
deadline for the whole request (request_deadline), settles each row: sent, retry later after a
backoff (backoff), or dead, and sends the app's delivery signals (signals). The status reader
(status) is the one account of the backlog and the last flush that tracify_status, the admin
summary and the Prometheus metrics (metrics) show; schedule keeps django-celery-beat's task.
"""
