from __future__ import annotations

from django.db import models
from django.db.models import Q


class OutboxEvent(models.Model):
    """A domain event, written in the transaction of the change it reports (an outbox).

    ``published_at`` is set once the event is on the Redis stream; rows left unpublished
    (a crash between commit and publish) are swept and published by the relay.
    ``processed_at`` is set by the worker once every handler of the event has committed
    (just before the stream entry is acked), ``dead_lettered_at`` when the event went to
    the dead-letter stream instead. A published row with neither, long after publishing,
    was lost from Redis: ``events reconcile`` publishes it again.
    """

    event_id = models.UUIDField(primary_key=True)
    type = models.CharField(max_length=64)
    schema_version = models.PositiveSmallIntegerField()
    occurred_at = models.DateTimeField()
    aggregate_id = models.UUIDField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    stream_id = models.CharField(max_length=40, blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["aggregate_id", "occurred_at"], name="outbox_aggregate_idx"),
            models.Index(
                fields=["created_at"],
                name="outbox_unpublished_idx",
                condition=Q(published_at__isnull=True),
            ),
            models.Index(
                fields=["published_at"],
                name="outbox_unsettled_idx",
                condition=Q(
                    published_at__isnull=False,
                    processed_at__isnull=True,
                    dead_lettered_at__isnull=True,
                ),
            ),
            # What retention deletes (lokaly_core.outbox.retention.prune_outbox).
            models.Index(
                fields=["created_at"],
                name="outbox_settled_idx",
                condition=Q(processed_at__isnull=False) | Q(dead_lettered_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class ProcessedEvent(models.Model):
    """Dedup marker: committed in the same transaction as a handler's effects."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    handler = models.CharField(max_length=100)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="processed_event_uniq"),
        ]
        indexes = [models.Index(fields=["processed_at"], name="processed_at_idx")]

    def __str__(self) -> str:
        return f"{self.handler} {self.event_id}"
