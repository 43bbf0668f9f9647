#include "modules/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <cstring>

namespace torii {

static constexpr int64_t kTicketKeyLifetimeS = 12 * 3600;

namespace {

struct TicketKey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int64_t created;  // CLOCK_REALTIME seconds
};

// A seqlock: the writer makes `seq` odd while it changes the keys; readers retry when they
// saw an odd or changed value. `rotating` keeps two processes from rotating at once.
struct TicketRing {
    std::atomic<uint32_t> seq;
    std::atomic<uint32_t> rotating;
    TicketKey current;
    TicketKey previous;
};

TicketRing *ring = nullptr;

int64_t now_s() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

bool fresh_key(TicketKey &k) {
    if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
        RAND_bytes(k.hmac, sizeof k.hmac) != 1)
        return false;
    k.created = now_s();
    return true;
}

void do_rotate() {
    uint32_t expected = 0;
    if (!ring->rotating.compare_exchange_strong(expected, 1)) return;  // another does it
    TicketKey next;
    if (fresh_key(next)) {
        ring->seq.fetch_add(1, std::memory_order_acq_rel);
        ring->previous = ring->current;
        ring->current = next;
        ring->seq.fetch_add(1, std::memory_order_acq_rel);
    }
    ring->rotating.store(0);
}

void read_keys(TicketKey &current, TicketKey &previous) {
    for (;;) {
        uint32_t before = ring->seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        current = ring->current;
        previous = ring->previous;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (ring->seq.load(std::memory_order_relaxed) == before) return;
    }
}

bool key_init(const TicketKey &k, unsigned char *iv, EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac,
              bool encrypt) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char *>("SHA256"), 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return false;
    if (EVP_MAC_init(mac, k.hmac, sizeof k.hmac, nullptr) != 1) return false;
    return encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) == 1
                   : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv) == 1;
}

// OpenSSL's ticket key callback: 1 = use (or the ticket decrypts), 2 = decrypts but renew
// it, 0 = unknown key (full handshake), -1 = error.
int ticket_key_cb(SSL *, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                  EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) {
    TicketKey current, previous;
    read_keys(current, previous);
    if (enc) {
        if (now_s() - current.created > kTicketKeyLifetimeS) {
            do_rotate();
            read_keys(current, previous);
        }
        if (RAND_bytes(iv, 16) != 1) return -1;
        std::memcpy(name, current.name, 16);
        return key_init(current, iv, cipher, mac, true) ? 1 : -1;
    }
    if (std::memcmp(name, current.name, 16) == 0)
        return key_init(current, iv, cipher, mac, false) ? 1 : -1;
    if (previous.created != 0 && std::memcmp(name, previous.name, 16) == 0)
        return key_init(previous, iv, cipher, mac, false) ? 2 : -1;
    return 0;
}

bool ensure_ring() {
    if (ring) return true;
    void *p = mmap(nullptr, sizeof(TicketRing), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) return false;
    auto *r = new (p) TicketRing();
    r->seq.store(0);
    r->rotating.store(0);
    std::memset(&r->previous, 0, sizeof r->previous);
    if (!fresh_key(r->current)) {
        munmap(p, sizeof(TicketRing));
        return false;
    }
    ring = r;
    return true;
}

}  // namespace

bool install_ticket_keys(SSL_CTX *ctx) {
    if (!ensure_ring()) return false;
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    return true;
}

void rotate_ticket_keys() {
    if (ensure_ring()) do_rotate();
}

}  // namespace torii
