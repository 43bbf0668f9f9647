// Result<T>: a value or an error message, for fallible steps that must not throw (libevent
// callbacks, the plugin boundary). std::expected is C++23; this is the small subset we use.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace torii {

struct Error {
    std::string message;
};

template <typename T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T &value() { return std::get<0>(v_); }
    const T &value() const { return std::get<0>(v_); }
    T &operator*() { return value(); }
    T *operator->() { return &value(); }

    const std::string &error() const { return std::get<1>(v_).message; }

private:
    std::variant<T, Error> v_;
};

template <>
class Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error.message)), ok_(false) {}

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const std::string &error() const { return error_; }

private:
    std::string error_;
    bool ok_ = true;
};

inline Error make_error(std::string message) {
    return Error{std::move(message)};
}

}  // namespace torii
