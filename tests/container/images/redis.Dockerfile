# Test stand-in for the compose file's redis:7.2-alpine: Debian's redis-server on the local base.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
# As the official image: the AOF lives in /data, the volume's mount point.
WORKDIR /data
USER redis
CMD ["redis-server"]
