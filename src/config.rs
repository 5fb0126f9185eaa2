//! memcached-compatible command-line flags.
