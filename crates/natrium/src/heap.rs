//! Keep freed memory for reuse instead of handing it back to the kernel at once.
//!
//! Why: a backup receives the archive in chunks of 128 KiB and more. async-nats reads
//! each into a fresh buffer (the previous one is still held by the last message), and
//! with glibc's defaults a buffer that size is its own `mmap`: every chunk then costs a
//! map, a page fault per 4 KiB page as the socket data is copied in, and an `munmap`
//! when the chunk has been written out. Measured on a 1 GiB backup into RAM
//! (2026-11-29, README "eighth pass"): 55-170 thousand page faults and ~15% of the
//! CLI's CPU time; with the thresholds below, ~8 thousand faults and ~10% less wall
//! time.
//!
//! What: allocations up to [`MMAP_THRESHOLD`] come from the heap, and up to
//! [`TRIM_THRESHOLD`] of free space at its top is kept rather than returned. Both are
//! upper bounds on memory kept idle, not on memory used. A short-lived CLI loses
//! nothing by keeping them. Other allocators and platforms are left as they are.

/// Largest allocation served from the heap rather than its own mapping. Above the
/// largest chunk a backup or restore moves (the server's `max_payload`, 1 MiB by
/// default, 8 MiB in practice).
pub const MMAP_THRESHOLD: usize = 16 << 20;

/// Free space at the top of a heap kept for reuse before it is trimmed.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Apply the thresholds (glibc only; a no-op elsewhere). Returns whether both took.
/// Call once, at start, before other threads allocate.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() -> bool {
    let to_int = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: `mallopt` takes two integers and changes allocator settings only; it is
    // called before the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, to_int(MMAP_THRESHOLD)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, to_int(TRIM_THRESHOLD)) == 1
    }
}

/// Elsewhere the platform's allocator keeps its own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Bytes glibc currently has in separate mappings.
    fn mapped() -> usize {
        // SAFETY: `mallinfo2` only reads allocator statistics.
        unsafe { libc::mallinfo2() }.hblkhd
    }

    #[test]
    fn a_chunk_sized_buffer_no_longer_gets_its_own_mapping() {
        assert!(keep_freed_memory(), "mallopt refused the thresholds");
        let before = mapped();
        // A backup chunk's worth (8 MiB): with glibc's defaults this is an mmap and
        // `mapped()` grows by at least its size.
        let buf = std::hint::black_box(vec![1u8; 8 << 20]);
        let during = mapped();
        assert!(
            during < before + (8 << 20),
            "an 8 MiB buffer was mapped on its own ({before} -> {during} bytes mapped)"
        );
        drop(buf);
    }
}
