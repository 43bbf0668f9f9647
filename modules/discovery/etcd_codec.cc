#include "modules/discovery/etcd_codec.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

namespace torii::etcd {

namespace {

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

struct FreeDeleter {
    void operator()(char *p) const { std::free(p); }
};

Result<JsonPtr> load(std::string_view text) {
    json_error_t err;
    JsonPtr root(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!root) return make_error("bad JSON: " + printable(err.text));
    if (!json_is_object(root.get())) return make_error("bad JSON: not an object");
    return root;
}

std::string dump(const json_t *root) {
    std::unique_ptr<char, FreeDeleter> text(json_dumps(root, JSON_COMPACT));
    return text ? std::string(text.get()) : std::string();
}

json_t *b64_string(std::string_view bytes) {
    std::string text = base64_encode(bytes);
    return json_stringn(text.data(), text.size());
}

// An int64 the gateway writes as a string ("42"), or a plain number; absent reads as 0. At
// most 18 digits, which cannot overflow (revisions never come near).
bool read_int64(const json_t *obj, const char *name, int64_t &out) {
    out = 0;
    const json_t *v = json_object_get(obj, name);
    if (!v) return true;
    if (json_is_integer(v)) {
        out = json_integer_value(v);
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 18)
        return false;
    int64_t n = 0;
    for (const char *p = json_string_value(v); *p; ++p) {
        if (*p < '0' || *p > '9') return false;
        n = n * 10 + (*p - '0');
    }
    out = n;
    return true;
}

// A base64 field: absent reads as empty; present but not a base64 string is an error.
bool read_b64(const json_t *obj, const char *name, std::string &out) {
    out.clear();
    const json_t *v = json_object_get(obj, name);
    if (!v) return true;
    if (!json_is_string(v)) return false;
    std::optional<std::string> bytes =
        base64_decode(std::string_view(json_string_value(v), json_string_length(v)));
    if (!bytes) return false;
    out = std::move(*bytes);
    return true;
}

Result<KeyValue> read_kv(const json_t *kv) {
    KeyValue out;
    if (!json_is_object(kv)) return make_error("a kv is not an object");
    if (!json_object_get(kv, "key")) return make_error("a kv has no key");
    if (!read_b64(kv, "key", out.key)) return make_error("a kv's key is not base64");
    if (!read_b64(kv, "value", out.value))
        return make_error("the value of key \"" + printable(out.key) + "\" is not base64");
    return out;
}

int64_t header_revision(const json_t *msg) {
    int64_t rev = 0;
    const json_t *header = json_object_get(msg, "header");
    if (json_is_object(header) && !read_int64(header, "revision", rev)) return -1;
    return rev;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(n);
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    // EVP_DecodeBlock skips white space at the ends and counts padding as zero bytes: refuse
    // the first, subtract the second.
    size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=')
        ++pad;
    for (size_t i = 0; i + pad < text.size(); ++i) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok) return std::nullopt;
    }
    std::string out(text.size() / 4 * 3, '\0');
    if (text.empty()) return out;
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0 || static_cast<size_t>(n) != out.size()) return std::nullopt;
    out.resize(out.size() - pad);
    return out;
}

std::string prefix_range_end(std::string_view prefix) {
    std::string end(prefix);
    for (size_t i = end.size(); i-- > 0;) {
        auto c = static_cast<unsigned char>(end[i]);
        if (c < 0xff) {
            end[i] = static_cast<char>(c + 1);
            end.resize(i + 1);
            return end;
        }
    }
    return std::string(1, '\0');
}

std::string range_request(std::string_view prefix) {
    JsonPtr root(json_object());
    json_object_set_new(root.get(), "key", b64_string(prefix));
    json_object_set_new(root.get(), "range_end", b64_string(prefix_range_end(prefix)));
    return dump(root.get());
}

std::string watch_request(std::string_view prefix, int64_t start_revision) {
    JsonPtr create(json_object());
    json_object_set_new(create.get(), "key", b64_string(prefix));
    json_object_set_new(create.get(), "range_end", b64_string(prefix_range_end(prefix)));
    json_object_set_new(create.get(), "start_revision", json_integer(start_revision));
    // etcd then sends an empty message after each quiet spell of its progress interval
    // (--experimental-watch-progress-notify-interval, 10 minutes by default): traffic that
    // lets a read timeout tell a silent watch from a hung connection (see etcd_discovery.cc).
    json_object_set_new(create.get(), "progress_notify", json_true());
    JsonPtr root(json_object());
    json_object_set_new(root.get(), "create_request", create.release());
    return dump(root.get());
}

Result<DiscoveredTarget> parse_target(std::string_view value) {
    Result<JsonPtr> root = load(value);
    if (!root) return make_error(root.error());
    const char *name;
    json_t *field;
    json_object_foreach(root->get(), name, field) {
        if (std::string_view(name) != "address" && std::string_view(name) != "weight")
            return make_error("unknown field \"" + std::string(name) +
                              "\" (expected address, weight)");
    }
    const json_t *address = json_object_get(root->get(), "address");
    if (!address) return make_error("no \"address\"");
    if (!json_is_string(address)) return make_error("\"address\" is not a string");
    std::string_view text(json_string_value(address), json_string_length(address));
    // Quoted raw in messages below: nothing that could forge a log line.
    for (char c : text)
        if (c < 0x21 || c > 0x7e)
            return make_error("\"address\" has a space, control or non-ASCII character");
    // An IP literal: SocketAddress::parse would resolve a name with getaddrinfo, which
    // blocks; bracketed IPv6 it parses numerically.
    if (!text.starts_with('[')) {
        size_t colon = text.rfind(':');
        std::string host(text.substr(0, colon == std::string_view::npos ? 0 : colon));
        in_addr v4;
        if (inet_pton(AF_INET, host.c_str(), &v4) != 1)
            return make_error("address \"" + std::string(text) +
                              "\": expected an IP address and a port, e.g. 10.0.0.5:8080 or "
                              "[fd00::5]:8080");
    }
    Result<SocketAddress> sockaddr = SocketAddress::parse(text);
    if (!sockaddr) return make_error(sockaddr.error());
    if (sockaddr->is_wildcard())
        return make_error("address \"" + std::string(text) + "\" is not one host");
    DiscoveredTarget target;
    target.address = *sockaddr;
    if (const json_t *weight = json_object_get(root->get(), "weight")) {
        if (!json_is_integer(weight) || json_integer_value(weight) < 1 ||
            json_integer_value(weight) > 1'000'000)
            return make_error("\"weight\" must be an integer from 1 to 1000000");
        target.weight = static_cast<int>(json_integer_value(weight));
    }
    return target;
}

Result<RangeResponse> parse_range_response(std::string_view body) {
    Result<JsonPtr> root = load(body);
    if (!root) return make_error(root.error());
    RangeResponse out;
    out.revision = header_revision(root->get());
    if (out.revision <= 0) return make_error("no revision in the response header");
    const json_t *kvs = json_object_get(root->get(), "kvs");
    if (kvs && !json_is_array(kvs)) return make_error("\"kvs\" is not an array");
    size_t i;
    json_t *kv;
    json_array_foreach(kvs, i, kv) {
        Result<KeyValue> one = read_kv(kv);
        if (!one) return make_error(one.error());
        out.kvs.push_back(std::move(*one));
    }
    // Paging (limit) is never asked for, so "more" would mean a list cut short.
    if (json_is_true(json_object_get(root->get(), "more")))
        return make_error("the range response is incomplete (\"more\")");
    return out;
}

Result<WatchMessage> parse_watch_message(std::string_view text) {
    Result<JsonPtr> root = load(text);
    if (!root) return make_error(root.error());
    if (json_object_get(root->get(), "error")) {
        std::string why = error_message(text);
        return make_error(why.empty() ? "error without a message" : why);
    }
    const json_t *result = json_object_get(root->get(), "result");
    if (!json_is_object(result)) return make_error("a message without \"result\"");
    WatchMessage out;
    out.revision = header_revision(result);
    if (out.revision < 0) return make_error("a bad revision in the header");
    out.created = json_is_true(json_object_get(result, "created"));
    out.canceled = json_is_true(json_object_get(result, "canceled"));
    if (!read_int64(result, "compact_revision", out.compact_revision))
        return make_error("a bad compact_revision");
    if (const json_t *reason = json_object_get(result, "cancel_reason"); json_is_string(reason))
        out.cancel_reason = printable(json_string_value(reason));
    const json_t *events = json_object_get(result, "events");
    if (events && !json_is_array(events)) return make_error("\"events\" is not an array");
    size_t i;
    json_t *event;
    json_array_foreach(events, i, event) {
        if (!json_is_object(event)) return make_error("an event is not an object");
        WatchEvent e;
        const json_t *type = json_object_get(event, "type");  // absent: PUT, the default
        if (type) {
            if (!json_is_string(type)) return make_error("an event type is not a string");
            std::string_view t = json_string_value(type);
            if (t == "DELETE")
                e.deleted = true;
            else if (t != "PUT")
                return make_error("unknown event type \"" + std::string(t) + "\"");
        }
        Result<KeyValue> kv = read_kv(json_object_get(event, "kv"));
        if (!kv) return make_error(kv.error());
        e.kv = std::move(*kv);
        if (e.deleted) e.kv.value.clear();
        out.events.push_back(std::move(e));
    }
    return out;
}

std::string error_message(std::string_view body) {
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), 0, &err));
    if (!json_is_object(root.get())) return {};
    const json_t *error = json_object_get(root.get(), "error");
    const json_t *message = json_object_get(root.get(), "message");
    if (json_is_object(error)) message = json_object_get(error, "message");
    if (!json_is_string(message) && json_is_string(error)) message = error;
    return json_is_string(message) ? printable(json_string_value(message)) : std::string();
}

std::string printable(std::string_view text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (char ch : text.substr(0, 200)) {
        auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            out += ch;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (text.size() > 200) out += "...";
    return out;
}

}  // namespace torii::etcd
