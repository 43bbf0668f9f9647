// Internal to core/config: typed, position-aware access to the TOML tree for the loader.
// Every failure is raised as ConfigError carrying the finished "FILE:LINE:COL: what" text;
// load_config_from_string catches it, so no exception leaves the public functions.
#pragma once

#include <toml++/toml.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config.h"

namespace torii::config_detail {

struct ConfigError {
    std::string message;
};

// The file being loaded: names it in messages and anchors relative paths.
struct FileContext {
    std::string file;  // as given, for messages
    std::string dir;   // absolute folder of the file

    SourcePos pos(const toml::source_region &where) const;
    // Relative paths are taken from the config file's folder; the result is normalised.
    std::string absolute(std::string_view path) const;
    [[noreturn]] void fail(const toml::source_region &where, const std::string &message) const;
};

// One TOML table being read, with the words used to name its keys in messages:
// `label` is the section ("[upstream.api]"), `prefix` names an inline sub-table ("tls.") so a
// key reads "[upstream.api] tls.sni".
class Section {
public:
    Section(const FileContext &ctx, toml::table &table, std::string label, std::string prefix = {})
        : ctx_(ctx), table_(table), label_(std::move(label)), prefix_(std::move(prefix)) {}

    const FileContext &ctx() const { return ctx_; }
    toml::table &table() const { return table_; }
    const std::string &label() const { return label_; }
    bool has(std::string_view key) const { return table_.contains(key); }
    toml::node *get(std::string_view key) const { return table_.get(key); }

    // Where a key is written (the table itself when the key is absent).
    toml::source_region where(std::string_view key) const;
    toml::source_region where() const { return table_.source(); }
    SourcePos pos(std::string_view key) const { return ctx_.pos(where(key)); }
    SourcePos pos() const { return ctx_.pos(where()); }

    // Fails on the first key not in `known`: `unknown key "listn" in [[server]]`.
    void allow_only(std::initializer_list<std::string_view> known) const;

    // "[main] workers: <what>" at the key.
    [[noreturn]] void fail(std::string_view key, const std::string &what) const;
    // `missing key "name" in [[plugin]]` at the table.
    [[noreturn]] void fail_missing(std::string_view key) const;

    // Each read_* leaves `out` alone and returns false when the key is absent, fails on a
    // value of the wrong type or range, and otherwise stores it and returns true.
    bool read(std::string_view key, std::string &out) const;
    bool read(std::string_view key, bool &out) const;
    bool read(std::string_view key, int &out, int64_t min, int64_t max) const;
    bool read_duration(std::string_view key, Millis &out) const;
    bool read_size(std::string_view key, uint64_t &out) const;
    // A non-empty path, made absolute against the config folder.
    bool read_path(std::string_view key, std::string &out) const;
    // A string or an array of strings, as `listen` and `server_name` allow.
    bool read_strings(std::string_view key, std::vector<std::string> &out) const;
    // A string that must be one of `choices`.
    bool read_choice(std::string_view key, std::string &out,
                     std::initializer_list<std::string_view> choices) const;

    std::string require(std::string_view key) const;
    // An inline (or header) table under `key`, read as part of this section.
    Section sub(std::string_view key) const;

private:
    const FileContext &ctx_;
    toml::table &table_;
    std::string label_;
    std::string prefix_;
};

}  // namespace torii::config_detail
