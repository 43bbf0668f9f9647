#include "core/base/arena.h"

#include <cstdlib>

namespace torii {

Arena::~Arena() {
    while (head_) {
        Block *next = head_->next;
        std::free(head_);
        head_ = next;
    }
}

Arena::Block *Arena::new_block(size_t min_size) {
    size_t size = min_size > kBlockSize ? min_size : kBlockSize;
    auto *b = static_cast<Block *>(std::malloc(sizeof(Block) + size));
    if (!b) std::abort();  // out of memory ends the worker; the master starts a new one
    b->next = head_;
    b->size = size;
    b->used = 0;
    head_ = b;
    allocated_ += size;
    return b;
}

char *Arena::alloc_slow(size_t n) {
    Block *b = new_block(n);
    char *p = b->data() + b->used;
    b->used += n;
    return p;
}

void Arena::append(std::string_view &s, const char *p, size_t n) {
    if (n == 0) return;
    if (s.empty()) {  // the common case: the piece arrived whole
        char *dst = alloc(n);
        std::memcpy(dst, p, n);
        s = {dst, n};
        return;
    }
    Block *b = head_;
    if (b && !s.empty()) {
        // Grow in place when s is the last thing allocated in the current block.
        char *end = const_cast<char *>(s.data()) + s.size();
        size_t aligned = (s.size() + 7) & ~size_t{7};
        char *alloc_end = const_cast<char *>(s.data()) + aligned;
        if (alloc_end == b->data() + b->used &&
            static_cast<size_t>(b->data() + b->size - end) >= n) {
            std::memcpy(end, p, n);
            size_t len = s.size() + n;
            b->used = static_cast<size_t>(const_cast<char *>(s.data()) - b->data()) +
                      ((len + 7) & ~size_t{7});
            s = {s.data(), len};
            return;
        }
    }
    size_t len = s.size() + n;
    char *dst = alloc(len + (len >> 1));  // room to grow again in place
    // Give back the slack so the next append can extend in place.
    head_->used -= ((len + (len >> 1) + 7) & ~size_t{7}) - ((len + 7) & ~size_t{7});
    if (!s.empty()) std::memcpy(dst, s.data(), s.size());
    std::memcpy(dst + s.size(), p, n);
    s = {dst, len};
}

void Arena::reset() {
    if (!head_) return;
    // Keep the oldest block (the first one allocated): it is sized for a typical request.
    Block *keep = head_;
    while (keep->next) {
        Block *next = keep->next;
        allocated_ -= keep->size;
        std::free(keep);
        keep = next;
    }
    keep->used = 0;
    keep->next = nullptr;
    head_ = keep;
}

}  // namespace torii
