#include "core/server/log_format.h"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "core/http/request.h"
#include "core/server/query_mask.h"
#include "core/worker/worker.h"

using namespace torii;

namespace {

void fill(Request &req) {
    req.remote_addr = "10.1.2.3";
    req.input.method = "GET";
    req.input.scheme = "http";
    req.input.target = "/api/x?apikey=k-7f3a&page=2";
    req.input.authority = "example.com";
    req.input.version = HttpVersion::http11;
    req.path = "/api/x";
    req.query = "apikey=k-7f3a&page=2";
    req.headers.add("User-Agent", "curl/8");
    req.response.status = 200;
    req.bytes_sent = 1234;
    req.start_ms = Worker::now_ms();  // $request_time "0.000"
}

std::string line(const LogFormat &f, Request &req) {
    std::string out;
    f.append_line(req, out);
    return out;
}

// "10/Oct/2000:13:55:36 -0700": digits and letters where $time_local has them. (No
// std::regex: GCC 12 warns inside it under the sanitizers, and warnings are errors.)
bool time_local_shape(std::string_view t) {
    const char *shape = "dd/Aaa/dddd:dd:dd:dd +dddd";
    if (t.size() != std::strlen(shape)) return false;
    for (size_t i = 0; i < t.size(); ++i) {
        char c = t[i], k = shape[i];
        bool ok = k == 'd'   ? (c >= '0' && c <= '9')
                  : k == 'A' ? (c >= 'A' && c <= 'Z')
                  : k == 'a' ? (c >= 'a' && c <= 'z')
                  : k == '+' ? (c == '+' || c == '-')
                             : c == k;
        if (!ok) return false;
    }
    return true;
}

// The line with its [time] cut out, checked for shape: "A - - [T] B" becomes "A - - [] B".
std::string without_time(const std::string &line) {
    size_t open = line.find('['), close = line.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return "?";
    if (!time_local_shape(std::string_view(line).substr(open + 1, close - open - 1))) return "?";
    return line.substr(0, open + 1) + line.substr(close);
}

std::shared_ptr<const LogFormat> compile(std::string_view spec) {
    auto f = LogFormat::compile(spec);
    REQUIRE(f.ok());
    return f.value();
}

}  // namespace

TEST_CASE("templates compile once; unknown variables and control characters are refused") {
    auto bad = LogFormat::compile("$remote_addr $nope");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "unknown variable \"$nope\"");
    CHECK_FALSE(LogFormat::compile("a $").ok());
    CHECK_FALSE(LogFormat::compile("${remote_addr").ok());
    CHECK_FALSE(LogFormat::compile("$remote_addr\n$status").ok());
    CHECK(LogFormat::compile("$remote_addr\t$status").ok());
    CHECK(compile("combined")->spec() == "combined");
    CHECK(compile({})->spec() == kDefaultFormat);
    CHECK(compile("json")->json());
}

TEST_CASE("a template writes text and variables; absent or empty values are \"-\"") {
    Request req;
    fill(req);
    auto f = compile("$remote_addr ${status}x \"$http_referer\" $upstream_addr $args|$uri");
    // $args has its credentials masked in the log; $uri has no query.
    CHECK(line(*f, req) == "10.1.2.3 200x \"-\" - apikey=***&page=2|/api/x\n");
}

TEST_CASE("values are escaped: no quote, backslash or control byte reaches a text line") {
    Request req;
    fill(req);
    req.headers.add("Referer", "a\"b\\c\n\x7f\xc3\xa9");
    auto f = compile("\"$http_referer\"");
    CHECK(line(*f, req) == "\"a\\x22b\\x5Cc\\x0A\\x7F\xc3\xa9\"\n");
}

TEST_CASE("combined is nginx's layout; the default adds request time and upstream") {
    Request req;
    fill(req);
    CHECK(without_time(line(*compile("combined"), req)) ==
          "10.1.2.3 - - [] \"GET /api/x?apikey=***&page=2 HTTP/1.1\" 200 1234 \"-\" "
          "\"curl/8\"\n");
    req.upstream_addr = "127.0.0.1:9";
    std::string with_time = without_time(line(*compile({}), req));
    std::string head =
        "10.1.2.3 - - [] \"GET /api/x?apikey=***&page=2 HTTP/1.1\" 200 1234 "
        "\"-\" \"curl/8\" ";
    REQUIRE(with_time.starts_with(head));
    std::string rest = with_time.substr(head.size());  // "0.000 127.0.0.1:9\n"
    CHECK(rest.size() == std::string("0.000 127.0.0.1:9\n").size());
    CHECK(rest[1] == '.');
    CHECK(rest.ends_with(" 127.0.0.1:9\n"));
}

TEST_CASE("json: one object a line, numbers as numbers, absent values null") {
    Request req;
    fill(req);
    req.input.target = "/a\"b?token=s3cret";
    req.headers.add("Referer", std::string_view("r\x01\xff", 3));
    std::string out = line(*compile("json"), req);
    CHECK(out.back() == '\n');
    CHECK(out.find("\n") == out.size() - 1);
    CHECK(out.starts_with("{\"time_iso8601\":\""));
    CHECK(out.find("\"remote_addr\":\"10.1.2.3\"") != std::string::npos);
    CHECK(out.find("\"request_uri\":\"/a\\\"b?token=***\"") != std::string::npos);
    CHECK(out.find("\"status\":200,") != std::string::npos);
    CHECK(out.find("\"body_bytes_sent\":1234,") != std::string::npos);
    CHECK(out.find("\"upstream_addr\":null") != std::string::npos);
    CHECK(out.find("\"upstream_response_time\":null") != std::string::npos);
    CHECK(out.find("\"http_referer\":\"r\\u0001\\ufffd\"") != std::string::npos);
    CHECK(out.find("\"server_protocol\":\"HTTP/1.1\"") != std::string::npos);
    size_t at = out.find("\"request_id\":\"");
    REQUIRE(at != std::string::npos);
    std::string id = out.substr(at + 14, 33);
    CHECK(id.back() == '"');
    CHECK(id.substr(0, 32).find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(out.ends_with("\"consumer\":null}\n"));
}

TEST_CASE("json: a numeric variable whose value is not a number is a string") {
    Request req;
    fill(req);
    req.response.headers.add("grpc-status", "007");
    std::string out = line(*compile("json"), req);
    CHECK(out.find("\"grpc_status\":\"007\"") != std::string::npos);
    Request ok;
    fill(ok);
    ok.response.headers.add("grpc-status", "0");
    CHECK(line(*compile("json"), ok).find("\"grpc_status\":0,") != std::string::npos);
}
