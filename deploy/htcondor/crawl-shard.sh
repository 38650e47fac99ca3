#!/usr/bin/env bash
# One shard of a sharded crawl under HTCondor (see crawl.sub). HTCondor puts
# no process number in a job's environment: the submit file passes
# $(Process) as ARCOLAKE_SHARD_INDEX and the queue's size as
# ARCOLAKE_SHARD_COUNT, which `--shard auto` reads.
set -euo pipefail

: "${ARCOLAKE_SOURCES:?set ARCOLAKE_SOURCES to the sources file}"
: "${DATABASE_URL:?set DATABASE_URL to the catalog}"
: "${ARCOLAKE_SHARD_INDEX:?the submit file sets ARCOLAKE_SHARD_INDEX = \$(Process)}"

exec "${ARCOLAKE_BIN:-arcolake}" crawl \
    --config "$ARCOLAKE_SOURCES" \
    --shard auto \
    --concurrency "${ARCOLAKE_CRAWL_CONCURRENCY:-16}" \
    --no-progress \
    --report "${ARCOLAKE_REPORT_DIR:-.}/crawl-$ARCOLAKE_SHARD_INDEX.json"
