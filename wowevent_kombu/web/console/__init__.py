"""The operator console: server-rendered pages for the person on call."""
