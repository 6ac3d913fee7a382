//! Memory store (to be written).
