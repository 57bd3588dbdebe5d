"""The documented shapes of the admin events endpoints."""

from __future__ import annotations

from rest_framework import serializers


class GroupStatsSerializer(serializers.Serializer):
    name = serializers.CharField()
    pending = serializers.IntegerField(help_text="Delivered to a consumer, not acked yet.")
    lag = serializers.IntegerField(
        allow_null=True,
        help_text="Entries in the stream not delivered to the group yet (null: unknown).",
    )
    consumers = serializers.IntegerField()


class StreamStatsSerializer(serializers.Serializer):
    name = serializers.CharField()
    length = serializers.IntegerField()
    groups = GroupStatsSerializer(many=True)


class EventStatsSerializer(serializers.Serializer):
    streams = StreamStatsSerializer(many=True)
    dead_letters = serializers.IntegerField()
    outbox_unpublished = serializers.IntegerField()


class DeadLetterSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The dead-letter stream entry id.")
    event_id = serializers.CharField()
    type = serializers.CharField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    failed_at = serializers.CharField()
    payload = serializers.JSONField(help_text="The event's envelope (null if unreadable).")


class DeadLetterPageSerializer(serializers.Serializer):
    results = DeadLetterSerializer(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True, help_text="Always null (forward only).")


class ReplayedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The dead letter that was replayed.")
    stream_id = serializers.CharField(help_text="Its new entry id on the event stream.")
