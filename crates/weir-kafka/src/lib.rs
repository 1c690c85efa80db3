//! Weir's Kafka wire-protocol server.
