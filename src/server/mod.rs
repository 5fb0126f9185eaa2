//! Executors, listeners, connections, forwarding between cores, stats.
