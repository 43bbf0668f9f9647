#include "core/http/headers.h"

#include <algorithm>

namespace torii {

static inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
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

void HeaderList::set(std::string_view name, std::string_view value) {
    remove(name);
    add(name, value);
}

}  // namespace torii
