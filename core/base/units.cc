#include "core/base/units.h"

#include <limits>
#include <string>

namespace torii {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// a * b + c without wrapping; false on overflow.
bool mul_add(uint64_t a, uint64_t b, uint64_t c, uint64_t &out) {
    uint64_t product;
    if (__builtin_mul_overflow(a, b, &product)) return false;
    return !__builtin_add_overflow(product, c, &out);
}

Error duration_error(std::string_view text, std::string_view why = {}) {
    std::string message = "invalid duration \"" + std::string(text) + "\" (";
    message += why.empty() ? std::string_view("use 250ms, 2s, 1m, 1h") : why;
    return make_error(message + ")");
}

Error size_error(std::string_view text, std::string_view why = {}) {
    std::string message = "invalid size \"" + std::string(text) + "\" (";
    message += why.empty() ? std::string_view("use 512, 8k, 1m, 1g") : why;
    return make_error(message + ")");
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
    size_t i = 0;
    uint64_t whole = 0;
    size_t whole_digits = 0;
    for (; i < text.size() && is_digit(text[i]); ++i, ++whole_digits) {
        if (!mul_add(whole, 10, text[i] - '0', whole)) return duration_error(text, "too large");
    }
    if (whole_digits == 0) return duration_error(text);

    // An optional fraction ("1.5s") is kept as an exact numerator over 10^digits so that the
    // result is computed in integers; nine digits is finer than any unit needs.
    uint64_t fraction = 0;
    uint64_t fraction_scale = 1;
    if (i < text.size() && text[i] == '.') {
        ++i;
        size_t digits = 0;
        for (; i < text.size() && is_digit(text[i]); ++i, ++digits) {
            if (digits == 9) return duration_error(text, "too many decimals");
            fraction = fraction * 10 + (text[i] - '0');
            fraction_scale *= 10;
        }
        if (digits == 0) return duration_error(text);
    }

    std::string_view suffix = text.substr(i);
    uint64_t unit;
    if (suffix == "ms") {
        unit = 1;
    } else if (suffix == "s") {
        unit = 1000;
    } else if (suffix == "m") {
        unit = 60 * 1000;
    } else if (suffix == "h") {
        unit = 60 * 60 * 1000;
    } else if (suffix == "d") {
        unit = 24 * 60 * 60 * 1000;
    } else {
        // Includes the bare number: "30" could mean seconds or milliseconds, so it is refused.
        return duration_error(text);
    }

    uint64_t fraction_ms = fraction * unit;  // < 10^9 * 86'400'000, fits in 64 bits
    if (fraction_ms % fraction_scale != 0) return duration_error(text, "finer than 1ms");
    uint64_t total;
    if (!mul_add(whole, unit, fraction_ms / fraction_scale, total) ||
        total > static_cast<uint64_t>(std::numeric_limits<Millis>::max())) {
        return duration_error(text, "too large");
    }
    return static_cast<Millis>(total);
}

Result<uint64_t> parse_size(std::string_view text) {
    size_t i = 0;
    uint64_t value = 0;
    for (; i < text.size() && is_digit(text[i]); ++i) {
        if (!mul_add(value, 10, text[i] - '0', value)) return size_error(text, "too large");
    }
    if (i == 0) return size_error(text);

    std::string_view suffix = text.substr(i);
    uint64_t unit;
    if (suffix.empty()) {
        unit = 1;
    } else if (suffix == "k" || suffix == "K") {
        unit = uint64_t{1} << 10;
    } else if (suffix == "m" || suffix == "M") {
        unit = uint64_t{1} << 20;
    } else if (suffix == "g" || suffix == "G") {
        unit = uint64_t{1} << 30;
    } else {
        return size_error(text);
    }
    uint64_t total;
    if (!mul_add(value, unit, 0, total)) return size_error(text, "too large");
    return total;
}

}  // namespace torii
