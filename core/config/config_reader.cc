#include "core/config/config_reader.h"

#include <algorithm>
#include <filesystem>

namespace torii {

std::string SourcePos::to_string() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace config_detail {

namespace {

std::string join(std::initializer_list<std::string_view> words) {
    std::string out;
    for (std::string_view word : words) {
        if (!out.empty()) out += ", ";
        out += word;
    }
    return out;
}

bool earlier(const toml::source_position &a, const toml::source_position &b) {
    return a.line < b.line || (a.line == b.line && a.column < b.column);
}

}  // namespace

SourcePos FileContext::pos(const toml::source_region &where) const {
    return SourcePos{file, where.begin.line, where.begin.column};
}

std::string FileContext::absolute(std::string_view path) const {
    std::filesystem::path p(path);
    if (p.is_relative()) p = std::filesystem::path(dir) / p;
    return p.lexically_normal().string();
}

void FileContext::fail(const toml::source_region &where, const std::string &message) const {
    throw ConfigError{pos(where).to_string() + ": " + message};
}

toml::source_region Section::where(std::string_view key) const {
    auto it = table_.find(key);
    if (it == table_.end()) return table_.source();
    // For `key = value` the key comes first; for a [header] or [[header]] table the key sits
    // inside the brackets and the table starts at the "[". The earlier of the two is the
    // column a reader expects.
    const toml::source_region &key_at = it->first.source();
    const toml::source_region &value_at = it->second.source();
    if (key_at.begin.line == 0) return value_at;
    if (value_at.begin.line == 0) return key_at;
    return earlier(value_at.begin, key_at.begin) ? value_at : key_at;
}

void Section::allow_only(std::initializer_list<std::string_view> known) const {
    for (auto &&[key, value] : table_) {
        if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
            ctx_.fail(where(key.str()),
                      "unknown key \"" + prefix_ + std::string(key.str()) + "\" in " + label_);
        }
    }
}

void Section::fail(std::string_view key, const std::string &what) const {
    ctx_.fail(where(key), label_ + " " + prefix_ + std::string(key) + ": " + what);
}

void Section::fail_missing(std::string_view key) const {
    ctx_.fail(where(), "missing key \"" + prefix_ + std::string(key) + "\" in " + label_);
}

bool Section::read(std::string_view key, std::string &out) const {
    const toml::node *node = get(key);
    if (!node) return false;
    if (!node->is_string()) fail(key, "expected a string");
    out = **node->as_string();
    return true;
}

bool Section::read(std::string_view key, bool &out) const {
    const toml::node *node = get(key);
    if (!node) return false;
    if (!node->is_boolean()) fail(key, "expected true or false");
    out = **node->as_boolean();
    return true;
}

bool Section::read(std::string_view key, int &out, int64_t min, int64_t max) const {
    const toml::node *node = get(key);
    if (!node) return false;
    if (!node->is_integer()) fail(key, "expected an integer");
    int64_t value = **node->as_integer();
    if (value < min || value > max) {
        fail(key, "must be from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                      std::to_string(value));
    }
    out = static_cast<int>(value);
    return true;
}

bool Section::read_duration(std::string_view key, Millis &out) const {
    const toml::node *node = get(key);
    if (!node) return false;
    // A bare number is refused: "30" could mean seconds or milliseconds.
    if (!node->is_string()) fail(key, "expected a duration string such as \"250ms\" or \"2s\"");
    Result<Millis> parsed = parse_duration(**node->as_string());
    if (!parsed) fail(key, parsed.error());
    out = *parsed;
    return true;
}

bool Section::read_size(std::string_view key, uint64_t &out) const {
    const toml::node *node = get(key);
    if (!node) return false;
    if (node->is_integer()) {  // a plain byte count reads naturally as a TOML integer too
        int64_t value = **node->as_integer();
        if (value < 0) fail(key, "must not be negative");
        out = static_cast<uint64_t>(value);
        return true;
    }
    if (!node->is_string()) fail(key, "expected a size such as \"8k\" or \"1m\"");
    Result<uint64_t> parsed = parse_size(**node->as_string());
    if (!parsed) fail(key, parsed.error());
    out = *parsed;
    return true;
}

bool Section::read_path(std::string_view key, std::string &out) const {
    std::string text;
    if (!read(key, text)) return false;
    if (text.empty()) fail(key, "expected a path, not an empty string");
    out = ctx_.absolute(text);
    return true;
}

bool Section::read_strings(std::string_view key, std::vector<std::string> &out) const {
    const toml::node *node = get(key);
    if (!node) return false;
    const char *expected = "expected a string or an array of strings";
    std::vector<std::string> values;
    if (node->is_string()) {
        values.push_back(**node->as_string());
    } else if (const toml::array *array = node->as_array()) {
        for (const toml::node &element : *array) {
            if (!element.is_string()) fail(key, expected);
            values.push_back(**element.as_string());
        }
    } else {
        fail(key, expected);
    }
    if (values.empty()) fail(key, "must not be empty");
    out = std::move(values);
    return true;
}

bool Section::read_choice(std::string_view key, std::string &out,
                          std::initializer_list<std::string_view> choices) const {
    std::string value;
    if (!read(key, value)) return false;
    for (std::string_view choice : choices) {
        if (value == choice) {
            out = std::move(value);
            return true;
        }
    }
    fail(key, "unknown value \"" + value + "\" (use " + join(choices) + ")");
}

std::string Section::require(std::string_view key) const {
    std::string value;
    if (!read(key, value)) fail_missing(key);
    return value;
}

Section Section::sub(std::string_view key) const {
    toml::table *table = table_.get_as<toml::table>(key);
    if (!table) fail(key, "expected a table, such as " + std::string(key) + " = { ... }");
    return Section(ctx_, *table, label_, prefix_ + std::string(key) + ".");
}

}  // namespace config_detail
}  // namespace torii
