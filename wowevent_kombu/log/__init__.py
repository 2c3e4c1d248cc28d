"""The event log (a Redis Stream) and what is built on it: queries by time, type and
correlation id, replays at a chosen pace, replay checkpoints and processed-id deduplication.
"""
