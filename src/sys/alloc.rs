//! Allocator tuning for worker processes.
//!
//! Fan-out bursts grow many send buffers at once and free them a moment later. With glibc's
//! defaults the freed top of the heap is handed back to the kernel (brk) as soon as it passes
//! 128 KiB and taken again on the next burst, so a saturated worker spent over half its time in
//! page faults and zeroing pages (BENCHMARKS.md, "Allocator churn"). Keeping a bounded amount
//! of freed memory in the process removes that churn.

/// Freed memory at the top of the heap kept for reuse instead of being returned to the kernel.
const TRIM_THRESHOLD: i32 = 64 << 20;
/// Blocks from this size up get their own mapping. This is glibc's starting value, set
/// explicitly because setting the trim threshold turns off its dynamic raising, and it must
/// stay low: a big array that grows by doubling (the connection slab: 3.6 MB at 17k
/// connections) is then moved by `mremap` instead of leaving its old copy resident in the
/// heap (with a 4 MiB threshold idle memory went from 455 to 939 B per connection). Send
/// queues stay below it: owned segments are 64 KiB chunks, the fan-out buffer is kept.
const MMAP_THRESHOLD: i32 = 128 << 10;

/// Tune glibc malloc for a long-lived event loop; a no-op on other C libraries.
pub(crate) fn tune_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it takes plain integers and is
        // called before the worker starts its loop, from its only thread.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
