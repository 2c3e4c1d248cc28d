#!/usr/bin/env bash
# Make sure a RabbitMQ answers on 127.0.0.1:5672 for the RabbitMQ tests: use the running one,
# else start the installed rabbitmq-server, else (root on Debian) install it first. Without one,
# the RabbitMQ tests skip with the reason (and fail when CI is set).
set -uo pipefail
host=127.0.0.1
port=5672
answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
if [ -n "${WOWEVENT_TEST_AMQP_URL:-}" ] || answers; then
    exit 0
fi
if ! command -v rabbitmq-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "rabbitmq-server is missing; installing Debian's rabbitmq-server package" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null) \
        || echo "could not install rabbitmq-server" >&2
fi
if ! command -v rabbitmq-server >/dev/null; then
    echo "No RabbitMQ on $host:$port and rabbitmq-server is not installed: RabbitMQ tests will skip" \
         "(install rabbitmq-server, or set WOWEVENT_TEST_AMQP_URL)" >&2
    exit 0
fi
echo "starting rabbitmq-server (RabbitMQ tests need it on $host:$port)" >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 120); do
    if answers; then
        exit 0
    fi
    sleep 1
done
echo "rabbitmq-server did not answer on $host:$port within 120 s: RabbitMQ tests will skip" >&2
exit 0
