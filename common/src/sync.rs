//! Locking a `std` mutex whose data stays consistent even if a holder
//! panicked (maps of channels, routes, leases): a poisoned lock is used as is.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
