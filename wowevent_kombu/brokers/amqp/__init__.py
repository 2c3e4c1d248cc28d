"""RabbitMQ: publishing with confirms into a topic exchange of quorum queues, the pinned
exchange for retries and replays, and the dispatch task that renames a routed message to the
subscriber task of the queue it arrived on. The event log and dead letters stay in Redis.
"""
