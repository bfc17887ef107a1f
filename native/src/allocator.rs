//! The allocator of every Rust allocation here, mimalloc (rows and findings are many small
//! allocations), tuned for a process that lives in an application's pod beside it.
//!
//! mimalloc's v2 line (Cargo.toml feature `v2`), not v3: in a process that had loaded chDB
//! before this module, v3 faulted in `mi_thread_init` on the first allocation of a thread
//! started after an earlier runtime stopped (tests/test_lifecycle.py runs two runtimes in one
//! process that way); v2 does not, at the same sidecar throughput and a lower peak
//! (docs/benchmarks.md §2).
//!
//! mimalloc commits each 1 GiB arena when it reserves one (`arena_eager_commit`, on by default
//! on Linux). Pages it frees inside a committed arena are only reset, which the kernel reclaims
//! lazily, so the sidecar's resident set kept its highest water mark: about 24 MB more than with
//! commit on demand, at the same throughput (docs/benchmarks.md §2). Committing on demand lets
//! purged pages leave the resident set. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still
//! wins, for whoever measures otherwise.

use std::ffi::{c_int, c_long};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc v2's `mi_option_t` (libmimalloc-sys 0.1.49,
/// pinned by Cargo.lock; mimalloc.h numbers the options in declaration order).
const ARENA_EAGER_COMMIT: c_int = 4;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
}

/// Arenas committed on demand unless the environment says otherwise. Called first thing when
/// the module loads, before the first arena is reserved.
pub fn tune() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: plain option setters of the linked mimalloc; any value is valid.
        unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
    }
}

/// The option as mimalloc reads it (for tests).
pub fn arena_eager_commit() -> c_long {
    // SAFETY: a plain option getter.
    unsafe { mi_option_get(ARENA_EAGER_COMMIT) }
}
