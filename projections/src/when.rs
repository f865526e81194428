//! Time expressions (placeholder; being written).
