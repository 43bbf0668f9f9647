// The wire format of etcd's v3 JSON gateway (grpc-gateway in front of the KV and Watch
// services), as pure functions without I/O so each piece is tested alone. Keys and values
// travel base64-encoded, 64-bit numbers as JSON strings ("revision": "42"), fields at their
// default value are left out (a PUT event has no "type", an empty value no "value").
//
//   POST /v3/kv/range {"key": b64, "range_end": b64}
//     -> {"header": {"revision": "7"}, "kvs": [{"key": b64, "value": b64}, ...]}
//   POST /v3/watch {"create_request": {"key": b64, "range_end": b64, "start_revision": "8"}}
//     -> a chunked stream, one JSON object and "\n" per message:
//        {"result": {"header": {...}, "created": true}}
//        {"result": {"header": {...}, "events": [{"type": "DELETE", "kv": {"key": b64}}]}}
//        {"result": {"canceled": true, "compact_revision": "5"}}
//        {"error": {"message": "..."}}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "modules/discovery/discovery_source.h"

namespace torii::etcd {

// Standard base64 with padding, the alphabet and form Go's encoding/json writes for bytes.
std::string base64_encode(std::string_view bytes);
// Only what base64_encode produces (length a multiple of 4, padding only at the end, no
// white space); nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view text);

// The end of the range holding every key that starts with `prefix` (clientv3's
// GetPrefixRangeEnd): the prefix with its last byte below 0xff incremented and what follows
// dropped; "\0" (every key from `prefix` on) when all its bytes are 0xff.
std::string prefix_range_end(std::string_view prefix);

// Request bodies.
std::string range_request(std::string_view prefix);
std::string watch_request(std::string_view prefix, int64_t start_revision);

// A key's value: a JSON object with the fields of a `targets` entry, {"address":
// "10.0.0.5:8080", "weight": 2}. The address is an IP literal and a port (IPv6 in brackets;
// no names, which would need a blocking lookup); weight 1..1000000, 1 when absent. Unknown
// fields are refused, as in the config, so that a misspelt "wieght" is not silently 1.
Result<DiscoveredTarget> parse_target(std::string_view value);

struct KeyValue {
    std::string key;
    std::string value;
};

struct RangeResponse {
    int64_t revision = 0;  // the store's revision the list was read at
    std::vector<KeyValue> kvs;
};
Result<RangeResponse> parse_range_response(std::string_view body);

struct WatchEvent {
    bool deleted = false;
    KeyValue kv;  // value empty for a delete
};

struct WatchMessage {
    bool created = false;
    bool canceled = false;
    int64_t compact_revision = 0;  // canceled because the start revision was compacted away
    std::string cancel_reason;
    int64_t revision = 0;  // from the header; 0 when absent
    std::vector<WatchEvent> events;
};
// One message of the watch stream; an {"error": ...} message is an error with its text.
Result<WatchMessage> parse_watch_message(std::string_view json);

// The text of a gateway error body ({"error": "...", "message": "...", "code": 3}, or
// {"error": {"message": "..."}} inside a stream); empty when there is none.
std::string error_message(std::string_view body);

// Text from etcd (a key, a parser's complaint, the server's own message) made safe for a
// log line: printable ASCII kept, anything else and the quote and backslash as \xNN, at
// most 200 bytes.
std::string printable(std::string_view text);

}  // namespace torii::etcd
