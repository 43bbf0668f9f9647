#include "core/http/headers.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace torii {

static inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c;
}

// Case-insensitive ASCII compare a word at a time: two bytes match when they are equal,
// or when they differ only in bit 0x20 and are letters (checked on x folded to lowercase,
// per byte without carries: each lane is masked to 7 bits before the range additions).
template <typename W>
static inline bool iequal_words(W x, W y) {
    constexpr W ones = W(~W(0)) / 0xff;  // 0x0101...
    W diff = x ^ y;
    if (diff == 0) return true;
    W folded = x | (ones * 0x20);
    W low7 = folded & (ones * 0x7f);
    W at_least_a = low7 + ones * (0x80 - 'a');   // lane's top bit set when >= 'a'
    W above_z = low7 + ones * (0x80 - 'z' - 1);  // ... when > 'z'
    W letter = at_least_a & ~above_z & ~folded & (ones * 0x80);
    return (diff & ~(letter >> 2)) == 0;  // 0x80 >> 2 == 0x20: only case may differ
}

bool iequals(std::string_view a, std::string_view b) {
    size_t n = a.size();
    if (n != b.size()) return false;
    const char *p = a.data(), *q = b.data();
    if (n >= 8) {
        uint64_t x, y;
        for (size_t i = 0; i + 8 < n; i += 8) {
            std::memcpy(&x, p + i, 8);
            std::memcpy(&y, q + i, 8);
            if (!iequal_words(x, y)) return false;
        }
        std::memcpy(&x, p + n - 8, 8);  // the last 8 bytes, overlapping what was checked
        std::memcpy(&y, q + n - 8, 8);
        return iequal_words(x, y);
    }
    if (n >= 4) {
        uint32_t x, y, x2, y2;
        std::memcpy(&x, p, 4);
        std::memcpy(&y, q, 4);
        std::memcpy(&x2, p + n - 4, 4);
        std::memcpy(&y2, q + n - 4, 4);
        return iequal_words(x, y) && iequal_words(x2, y2);
    }
    for (size_t i = 0; i < n; ++i)
        if (lower(p[i]) != lower(q[i])) return false;
    return true;
}

static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view item = trim(value.substr(0, comma));
        if (iequals(item, token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

// `lit` is lowercase letters, digits and '-'. For a valid field name (a token: no control
// characters), c | 0x20 equals such a character only when c is that character or, for a
// letter, its uppercase form: so one OR folds case without a table, 8 bytes at a time.
__attribute__((always_inline)) static inline bool equals_lowercase_literal(std::string_view a,
                                                                           std::string_view lit) {
    if (a.size() != lit.size()) return false;
    size_t n = a.size();
    auto word8 = [&](size_t i) {
        uint64_t x, y;
        std::memcpy(&x, a.data() + i, 8);
        std::memcpy(&y, lit.data() + i, 8);
        return (x | 0x2020202020202020ull) == y;
    };
    if (n >= 8) {  // whole words, the tail as one more word overlapping the last
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            if (!word8(i)) return false;
        return i == n || word8(n - 8);
    }
    if (n >= 4) {  // "host", "date", "te"-less short names: two overlapping halves
        uint32_t x0, y0, x1, y1;
        std::memcpy(&x0, a.data(), 4);
        std::memcpy(&y0, lit.data(), 4);
        std::memcpy(&x1, a.data() + n - 4, 4);
        std::memcpy(&y1, lit.data() + n - 4, 4);
        return (x0 | 0x20202020u) == y0 && (x1 | 0x20202020u) == y1;
    }
    for (size_t i = 0; i < n; ++i)
        if ((a[i] | 0x20) != lit[i]) return false;
    return true;
}

HeaderId classify_header(std::string_view n) {
    // By length first: one compare at most per field.
    auto iequals = equals_lowercase_literal;
    switch (n.size()) {
        case 2:
            return iequals(n, "te") ? HeaderId::te : HeaderId::other;
        case 3:
            return iequals(n, "via") ? HeaderId::via : HeaderId::other;
        case 4:
            return iequals(n, "host") ? HeaderId::host : HeaderId::other;
        case 6:
            return iequals(n, "expect") ? HeaderId::expect : HeaderId::other;
        case 7:
            if (iequals(n, "upgrade")) return HeaderId::upgrade;
            return iequals(n, "trailer") ? HeaderId::trailer : HeaderId::other;
        case 9:
            return iequals(n, "x-real-ip") ? HeaderId::x_real_ip : HeaderId::other;
        case 10:
            if (iequals(n, "connection")) return HeaderId::connection;
            return iequals(n, "keep-alive") ? HeaderId::keep_alive : HeaderId::other;
        case 12:  // shared with content-type, in every response: one byte tells them apart
            return (n[0] | 0x20) == 'x' && iequals(n, "x-request-id") ? HeaderId::x_request_id
                                                                      : HeaderId::other;
        case 14:
            return iequals(n, "content-length") ? HeaderId::content_length : HeaderId::other;
        case 15:
            return iequals(n, "x-forwarded-for") ? HeaderId::x_forwarded_for : HeaderId::other;
        case 16:
            return iequals(n, "proxy-connection") ? HeaderId::proxy_connection : HeaderId::other;
        case 17:
            if (iequals(n, "transfer-encoding")) return HeaderId::transfer_encoding;
            return iequals(n, "x-forwarded-proto") ? HeaderId::x_forwarded_proto : HeaderId::other;
        case 18:
            return iequals(n, "proxy-authenticate") ? HeaderId::proxy_authenticate
                                                    : HeaderId::other;
        case 19:
            return iequals(n, "proxy-authorization") ? HeaderId::proxy_authorization
                                                     : HeaderId::other;
        default:
            return HeaderId::other;
    }
}

std::string_view HeaderList::get(HeaderId id, bool *found) const {
    for (const Header &h : items_) {
        if (h.id == id) {
            if (found) *found = true;
            return h.value;
        }
    }
    if (found) *found = false;
    return {};
}

bool HeaderList::contains(HeaderId id) const {
    for (const Header &h : items_)
        if (h.id == id) return true;
    return false;
}

std::string_view HeaderList::get(std::string_view name, bool *found) const {
    for (const Header &h : items_) {
        if (iequals(h.name, name)) {
            if (found) *found = true;
            return h.value;
        }
    }
    if (found) *found = false;
    return {};
}

bool HeaderList::contains(std::string_view name) const {
    bool found;
    get(name, &found);
    return found;
}

size_t HeaderList::remove(std::string_view name) {
    return remove_if([&](const Header &h) { return iequals(h.name, name); });
}

void HeaderList::grow() {
    items_.reserve(items_.capacity() < 8 ? 16 : 2 * items_.capacity());
}

// Plugins set headers on every request (header_rewrite, ratelimit's RateLimit-*): the
// usual case, a name the list does not hold, is one pass of id or length compares.
void HeaderList::set(std::string_view name, std::string_view value) {
    HeaderId id = classify_header(name);
    auto same = [&](const Header &h) {
        return id != HeaderId::other ? h.id == id
                                     : h.id == HeaderId::other && iequals(h.name, name);
    };
    if (std::any_of(items_.begin(), items_.end(), same)) std::erase_if(items_, same);
    add(name, value, id);
}

}  // namespace torii
