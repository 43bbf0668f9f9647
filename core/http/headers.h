// An ordered list of header fields. Names and values are views into memory owned by the
// message (its request arena); the list never owns bytes. Lookups are case-insensitive, as
// HTTP field names are; duplicates are kept in order, as received.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace torii {

// Names the core looks up on every request, recognised once when a field is added so that
// hot-path lookups compare a byte instead of strings.
enum class HeaderId : uint8_t {
    other = 0,
    host,
    connection,
    content_length,
    transfer_encoding,
    keep_alive,
    proxy_connection,
    te,
    trailer,
    upgrade,
    expect,
    via,
    x_forwarded_for,
    x_real_ip,
    x_forwarded_proto,
    proxy_authenticate,
    proxy_authorization,
    x_request_id,
};

HeaderId classify_header(std::string_view name);

// Fields one request head may carry, on every protocol: past it the request gets 431 (SPEC
// section 7). Each field costs a Header entry and a pass of every lookup; 256 is far above
// what clients send (browsers: ~20) and what backends accept (nginx: 8 KiB lines).
inline constexpr size_t kMaxRequestHeaderFields = 256;

struct Header {
    std::string_view name;
    std::string_view value;
    HeaderId id = HeaderId::other;
};

bool iequals(std::string_view a, std::string_view b);
// True when the comma-separated list `value` holds `token` (case-insensitive), e.g.
// has_token("keep-alive, Upgrade", "upgrade").
bool has_token(std::string_view value, std::string_view token);

class HeaderList {
public:
    using iterator = std::vector<Header>::iterator;
    using const_iterator = std::vector<Header>::const_iterator;

    void add(std::string_view name, std::string_view value) {
        add(name, value, classify_header(name));
    }
    void add(std::string_view name, std::string_view value, HeaderId id) {
        // Lists are pooled with the request and reserved ahead: growing is the rare case,
        // kept out of line so the common append is a few instructions.
        if (items_.size() == items_.capacity()) [[unlikely]]
            grow();
        // There is room now. Said to the optimiser, push_back's own reallocation path (and
        // the registers it saves on every call) leaves the append: 13 instructions, not 37.
        if (items_.data() + items_.size() == items_.data() + items_.capacity())
            __builtin_unreachable();
        items_.push_back({name, value, id});
    }
    // The first value of `name`, or an empty view with found=false.
    std::string_view get(std::string_view name, bool *found = nullptr) const;
    std::string_view get(HeaderId id, bool *found = nullptr) const;
    bool contains(std::string_view name) const;
    bool contains(HeaderId id) const;
    // Removes every field called `name`; returns how many.
    size_t remove(std::string_view name);
    // Replaces every field called `name` with one (added at the end when absent).
    void set(std::string_view name, std::string_view value);

    size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }
    void clear() { items_.clear(); }
    // Drops the fields from position n on (what was added after size() was n).
    void truncate(size_t n) { items_.resize(n < items_.size() ? n : items_.size()); }
    void reserve(size_t n) { items_.reserve(n); }
    const Header &operator[](size_t i) const { return items_[i]; }
    const Header &back() const { return items_.back(); }
    iterator begin() { return items_.begin(); }
    iterator end() { return items_.end(); }
    const_iterator begin() const { return items_.begin(); }
    const_iterator end() const { return items_.end(); }
    template <typename Pred>
    size_t remove_if(Pred pred) {
        size_t before = items_.size();
        std::erase_if(items_, pred);
        return before - items_.size();
    }

private:
    void grow();
    std::vector<Header> items_;
};

}  // namespace torii
