//! Giving freed memory back to the operating system.

/// Returns the heap's free memory to the system (glibc's `malloc_trim`), where
/// the C allocator is glibc's; elsewhere there is nothing to do. Blocking: it
/// walks the heap (milliseconds for a large one).
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a byte count and only rearranges the
        // allocator's own free lists; it is safe to call at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
