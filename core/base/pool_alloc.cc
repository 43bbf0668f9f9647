#include "core/base/pool_alloc.h"

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace torii::pool {

namespace {

constexpr size_t kHeader = 16;  // keeps the 16-byte alignment malloc gives
constexpr int kClasses = 10;    // 64 B .. 32 KiB, header included
constexpr size_t kSmallest = 64;
constexpr size_t kPoolBytesPerClass = 1 << 20;  // at most 10 MiB kept, after a burst
constexpr uint32_t kLarge = 0xffffffff;  // not pooled: malloc'd as is

struct FreeBlock {
    FreeBlock *next;
};

struct Class {
    FreeBlock *free = nullptr;
    size_t count = 0;
};

Class classes[kClasses];

constexpr size_t class_size(int c) {
    return kSmallest << c;
}

// The smallest class that holds `total` bytes: the power of two at or above it, counted from
// 64 (bit arithmetic, not a loop: libevent's 1 KiB chains took six rounds on every alloc).
inline int class_for(size_t total) {
    if (total > class_size(kClasses - 1)) return -1;
    return static_cast<int>(std::bit_width((total - 1) | (kSmallest - 1))) - 6;
}
static_assert(kSmallest == 64, "class_for counts from 2^6");

inline uint32_t &tag(void *block) {
    return *static_cast<uint32_t *>(block);
}

}  // namespace

void *alloc(size_t n) {
    size_t total = n + kHeader;
    int c = class_for(total);
    void *block;
    if (c < 0) {
        block = std::malloc(total);
        if (!block) return nullptr;
        tag(block) = kLarge;
    } else if (classes[c].free) {
        block = classes[c].free;
        classes[c].free = classes[c].free->next;
        --classes[c].count;
        tag(block) = static_cast<uint32_t>(c);
    } else {
        block = std::malloc(class_size(c));
        if (!block) return nullptr;
        tag(block) = static_cast<uint32_t>(c);
    }
    return static_cast<char *>(block) + kHeader;
}

void free(void *p) {
    if (!p) return;
    void *block = static_cast<char *>(p) - kHeader;
    uint32_t c = tag(block);
    if (c == kLarge || classes[c].count * class_size(static_cast<int>(c)) >= kPoolBytesPerClass) {
        std::free(block);
        return;
    }
    auto *f = static_cast<FreeBlock *>(block);
    f->next = classes[c].free;
    classes[c].free = f;
    ++classes[c].count;
}

void *calloc(size_t count, size_t n) {
    if (n && count > SIZE_MAX / n) return nullptr;
    void *p = alloc(count * n);
    if (p) std::memset(p, 0, count * n);
    return p;
}

void *realloc(void *p, size_t n) {
    if (!p) return alloc(n);
    void *block = static_cast<char *>(p) - kHeader;
    uint32_t c = tag(block);
    size_t room = c == kLarge ? 0 : class_size(static_cast<int>(c)) - kHeader;
    if (c != kLarge && n <= room) return p;  // still fits its block
    if (c == kLarge) {
        void *grown = std::realloc(block, n + kHeader);
        if (!grown) return nullptr;
        // A large block may now fit a class: it stays large (its tag says so).
        return static_cast<char *>(grown) + kHeader;
    }
    void *q = alloc(n);
    if (!q) return nullptr;
    std::memcpy(q, p, room);
    free(p);
    return q;
}

// Under AddressSanitizer the pool would hide a use after free inside a recycled block:
// the libraries keep their own allocator there.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPooling = false;
#else
constexpr bool kPooling = true;
#endif

void install_for_libevent() {
    if (kPooling) event_set_mem_functions(alloc, realloc, free);
}

static void *ng_malloc(size_t n, void *) {
    return alloc(n);
}
static void ng_free(void *p, void *) {
    free(p);
}
static void *ng_calloc(size_t count, size_t n, void *) {
    return calloc(count, n);
}
static void *ng_realloc(void *p, size_t n, void *) {
    return realloc(p, n);
}

nghttp2_mem *nghttp2_allocator() {
    static nghttp2_mem mem = {nullptr, ng_malloc, ng_free, ng_calloc, ng_realloc};
    return kPooling ? &mem : nullptr;  // nullptr: nghttp2's default allocator
}

}  // namespace torii::pool
