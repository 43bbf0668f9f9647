// A self-signed certificate and its key, made with OpenSSL for tests that load TLS
// settings (the config loader opens and checks the files it is given).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace torii::test {

struct TestCert {
    std::string cert;  // absolute paths
    std::string key;
};

// Writes DIR/NAME.pem and DIR/NAME.key for CN=`name` (once per process and name).
inline TestCert make_test_cert(const std::string &name = "localhost") {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / "torii-unit-certs";
    std::filesystem::create_directories(dir);
    TestCert out{(dir / (name + ".pem")).string(), (dir / (name + ".key")).string()};
    if (std::filesystem::exists(out.cert) && std::filesystem::exists(out.key)) return out;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, pkey);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, pkey, EVP_sha256());
    if (FILE *f = std::fopen(out.cert.c_str(), "w")) {
        PEM_write_X509(f, x);
        std::fclose(f);
    }
    if (FILE *f = std::fopen(out.key.c_str(), "w")) {
        PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
    }
    X509_free(x);
    EVP_PKEY_free(pkey);
    return out;
}

}  // namespace torii::test
