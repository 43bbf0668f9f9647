// Per-request arena: request heads, header copies and rewritten strings live here and are
// freed in one go when the request ends (h2o's req->pool). Blocks never move, so a
// string_view into the arena stays valid for the request's life.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace torii {

class Arena {
public:
    Arena() = default;
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;
    ~Arena();

    // Fast path inline (a request makes a dozen of these); a new block out of line.
    char *alloc(size_t n) {
        n = (n + 7) & ~size_t{7};
        Block *b = head_;
        if (!b || b->size - b->used < n) return alloc_slow(n);
        char *p = b->data() + b->used;
        b->used += n;
        return p;
    }
    std::string_view copy(std::string_view s) {
        if (s.empty()) return std::string_view("", 0);  // never a null data()
        char *p = alloc(s.size());
        std::memcpy(p, s.data(), s.size());
        return {p, s.size()};
    }
    // Appends to `s`, which must be empty or the most recent string grown here; extends in
    // place when the block has room, else moves it. Used for parser pieces that arrive split.
    void append(std::string_view &s, const char *p, size_t n);
    // Frees all but the first block, which is kept for the next request on the connection.
    void reset();
    size_t bytes_allocated() const { return allocated_; }

private:
    struct Block {
        Block *next;
        size_t size;
        size_t used;
        char *data() { return reinterpret_cast<char *>(this + 1); }
    };
    static constexpr size_t kBlockSize = 4096 - sizeof(Block);
    Block *new_block(size_t min_size);
    char *alloc_slow(size_t n);

    Block *head_ = nullptr;  // current block; older ones follow through next
    size_t allocated_ = 0;
};

}  // namespace torii
