"""The admin API: JSON routes under ``/admin/``, each needing a bearer token."""
