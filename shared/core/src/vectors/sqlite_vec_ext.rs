//! Makes sqlite-vec (`vec0`, `vec_distance_cosine`, ...) part of every SQLite connection this
//! process opens afterwards, through `sqlite3_auto_extension`. The one unsafe block of HBI.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

use libsqlite3_sys::{SQLITE_OK, sqlite3, sqlite3_api_routines, sqlite3_auto_extension};

/// The entry point every SQLite extension has.
type ExtensionInit = unsafe extern "C" fn(*mut sqlite3, *mut *mut c_char, *const sqlite3_api_routines) -> c_int;

static REGISTERED: OnceLock<c_int> = OnceLock::new();

/// Registers sqlite-vec once per process; call it before opening a SQLite connection
/// (connections opened earlier do not get it).
pub fn register() -> anyhow::Result<()> {
    let code = *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vec_init` is the C function
        // `int sqlite3_vec_init(sqlite3*, char**, const sqlite3_api_routines*)`, compiled by the
        // sqlite-vec crate with SQLITE_CORE against the SQLite that libsqlite3-sys links (the
        // one sqlx uses); the crate declares it without parameters, so the pointer is cast back
        // to its real signature, which is exactly what `sqlite3_auto_extension` expects.
        // `sqlite3_auto_extension` only stores the pointer (it is thread-safe and ignores a
        // pointer already registered); the function is static and lives as long as the process.
        unsafe {
            let init: ExtensionInit =
                std::mem::transmute::<unsafe extern "C" fn(), ExtensionInit>(sqlite_vec::sqlite3_vec_init);
            sqlite3_auto_extension(Some(init))
        }
    });
    if code != SQLITE_OK {
        anyhow::bail!("registering the sqlite-vec extension failed with SQLite code {code}");
    }
    Ok(())
}
