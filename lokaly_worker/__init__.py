"""The event worker: reads the Redis stream with a consumer group and runs handlers."""
