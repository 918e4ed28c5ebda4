//! The only module that calls libc. Everything above it is safe Rust.

/// Call a libc function, turning a `-1` return into `io::Error::last_os_error()`. Defined
/// before the submodules and not exported, so only `sys` can use it: code above this layer
/// cannot reach libc without writing `unsafe` itself.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // The arguments are plain values and pointers; evaluating them inside the block adds no
        // unsafety of its own, the call is what the caller vouches for.
        #[allow(unused_unsafe, clippy::macro_metavars_in_unsafe)]
        // SAFETY: each caller passes valid pointers/fds as documented at the call site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub(crate) mod alloc;
pub(crate) mod fdpass;
pub(crate) mod fs;
pub mod process;
pub(crate) mod socket;
pub(crate) mod term;
