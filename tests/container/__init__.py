"""Tests that build compose/Dockerfile and run containers on a private dockerd."""
