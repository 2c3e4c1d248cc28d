"""Versioned JSON Schemas for event types: the schema and its validator, the registry in
Redis, the structural diff and compatibility modes, and the middleware that checks at consume.
"""
