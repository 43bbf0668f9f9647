// Size-class free lists for the C libraries that allocate per request: libevent's buffer
// chains (event_set_mem_functions) and nghttp2's frames, streams and header blocks
// (nghttp2_mem). glibc's per-thread cache holds 7 blocks of a size; a worker with a hundred
// streams or connections in flight runs past it on every request and into the slow path
// (~130-280 instructions a malloc here). A freed block goes on its class's list and comes
// back on the next allocation of that class: a few instructions each way.
//
// Blocks carry a 16-byte header with their class, so free() needs no size (neither library
// passes one). Sizes above the largest class go straight to malloc. Each class keeps at
// most kPoolBytesPerClass of free blocks, the rest goes back to malloc. One worker, one
// thread: not thread-safe, like the loop it serves.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace torii::pool {

void *alloc(size_t n);
void *calloc(size_t count, size_t n);
void *realloc(void *p, size_t n);
void free(void *p);

// Routes libevent's allocations through the pool; call before any libevent object exists.
void install_for_libevent();
// The nghttp2_mem to pass to nghttp2_session_*_new3.
nghttp2_mem *nghttp2_allocator();

}  // namespace torii::pool
