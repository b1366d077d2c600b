#!/bin/sh
# Container entrypoint: `sluice serve` on the container's interfaces with its data on the
# /var/lib/sluice volume. Environment (all optional):
#   SLUICE_LISTEN               Kafka listener inside the container   (0.0.0.0:9092)
#   SLUICE_ADMIN_LISTEN         admin HTTP: /metrics, /v1/ready, ...   (0.0.0.0:9644)
#   SLUICE_ADVERTISED_LISTENER  host:port clients are told to use      (localhost:9092)
#   SLUICE_DATA_DIR             partitions, metadata, offsets           (/var/lib/sluice)
#   SLUICE_IO_DRIVER            auto | io_uring | polling               (auto)
# Extra arguments go to `sluice serve` after these (e.g. --config /etc/sluice/sluice.toml;
# the flags above take precedence over the file's listen/advertised/admin/data keys).
set -eu
set -- serve \
    --data-dir "${SLUICE_DATA_DIR:-/var/lib/sluice}" \
    --listen "${SLUICE_LISTEN:-0.0.0.0:9092}" \
    --admin-listen "${SLUICE_ADMIN_LISTEN:-0.0.0.0:9644}" \
    --advertised-listener "${SLUICE_ADVERTISED_LISTENER:-localhost:9092}" \
    "$@"
exec sluice "$@"
