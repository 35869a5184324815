//! What openjp2 needs in the browser build: the C allocator, `strcpy`, and a global allocator
//! that lets a null pointer be freed. openjp2 (the pure-Rust
//! JPEG 2000 decoder behind dicom-pixeldata) is a line-by-line port of OpenJPEG and still calls
//! libc's `malloc`, `calloc`, `realloc`, `free` and `strcpy`; `wasm32-unknown-unknown` has no
//! libc, so without these the module would import them from an `env` no browser provides.
//! They are Rust's allocator with the size kept in a header before each block (as `free` and
//! `realloc` are not told it).
//!
//! openjp2 also hands Rust's `dealloc` the null pointer of a code block it never filled; the
//! system allocator forgives that natively (libc's `free(NULL)`), wasm's dlmalloc traps on it
//! ("memory access out of bounds"). The browser build's global allocator therefore passes null
//! over and is the system allocator otherwise.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc as grow, GlobalAlloc, Layout, System};

struct NullTolerant;

unsafe impl GlobalAlloc for NullTolerant {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !ptr.is_null() {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static ALLOCATOR: NullTolerant = NullTolerant;

/// Room before each block for its size, keeping the block aligned as malloc's are.
const HEADER: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

unsafe fn finish(base: *mut u8, size: usize) -> *mut u8 {
    if base.is_null() {
        return base;
    }
    (base as *mut usize).write(size);
    base.add(HEADER)
}

/// # Safety
/// C's `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut u8 {
    match layout(size) {
        Some(l) => finish(alloc(l), size),
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// C's `calloc`.
#[no_mangle]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size).and_then(|n| layout(n).map(|l| (n, l))) {
        Some((n, l)) => finish(alloc_zeroed(l), n),
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// C's `free`: `ptr` is null or came from this module's `malloc`, `calloc` or `realloc`.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    let base = ptr.sub(HEADER);
    let size = (base as *const usize).read();
    dealloc(base, layout(size).expect("was allocated"));
}

/// # Safety
/// C's `realloc`: `ptr` is null or came from this module.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        return malloc(size);
    }
    let base = ptr.sub(HEADER);
    let old = (base as *const usize).read();
    match layout(size) {
        Some(l) => finish(grow(base, layout(old).expect("was allocated"), l.size()), size),
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// C's `strcpy`: `src` is NUL-terminated and `dst` has room for it.
#[no_mangle]
pub unsafe extern "C" fn strcpy(dst: *mut u8, src: *const u8) -> *mut u8 {
    let mut i = 0;
    loop {
        let c = src.add(i).read();
        dst.add(i).write(c);
        if c == 0 {
            return dst;
        }
        i += 1;
    }
}
