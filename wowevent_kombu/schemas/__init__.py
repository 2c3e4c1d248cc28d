"""Versioned JSON Schemas for event types: the schema and its validator, the registry in
Redis and the record it keeps per version, the structural diff and compatibility modes, and the
middleware that checks at consume.
"""
