"""What operators see: Prometheus metrics, the recent window behind health, the cluster status
read from Redis, subscriber health rules, and the HTTP service with /health, /ready, /metrics.
"""
