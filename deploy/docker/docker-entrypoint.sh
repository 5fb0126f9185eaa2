#!/bin/sh
# The image's entrypoint. Takes what the official memcached image's takes, so Compose
# files and `docker run` lines written for memcached:1.6 work with only the image name
# changed:
#   (nothing, or the CMD)        memcached-rs with its defaults
#   memcached -m 256 -c 1024     memcached-rs -m 256 -c 1024 (a leading `memcached`,
#                                or `memcached-rs`, names the server)
#   -m 256 -c 1024               memcached-rs -m 256 -c 1024 (bare flags, as the
#                                official entrypoint: a first argument starting with -)
#   sh -c '...'                  run as given (any other command)
# Tested as a script by scripts/deploy-check.sh (a stub memcached-rs on PATH).
set -e
case "${1-}" in
    memcached | memcached-rs | /usr/bin/memcached | /usr/local/bin/memcached | /usr/bin/memcached-rs)
        shift
        set -- memcached-rs "$@"
        ;;
    -*)
        set -- memcached-rs "$@"
        ;;
    '')
        set -- memcached-rs
        ;;
esac
exec "$@"
