"""Redis: one Lua call per publish (log append and every delivery), the guarded Kombu channel
that pops atomically and quarantines what is not a message, bells, clients and private servers.
"""
