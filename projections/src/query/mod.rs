//! Parse queries over a projection (placeholder; being written).
