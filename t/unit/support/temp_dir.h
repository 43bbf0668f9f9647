// A fresh directory under /tmp for one test, removed with what is in it when the test ends.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace torii::test {

struct TempDir {
    std::string path;  // absolute, no trailing slash

    TempDir() {
        char pattern[] = "/tmp/torii-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    // Writes `text` to `name` below the directory (folders made as needed); the file's path.
    std::string write(const std::string &name, const std::string &text) const {
        std::filesystem::path file = std::filesystem::path(path) / name;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << text;
        return file.string();
    }
};

}  // namespace torii::test
