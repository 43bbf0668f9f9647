// Session ticket keys shared by every worker of every generation, so a client resumes its
// TLS session whichever worker it reaches and across reloads (nginx makes new keys at each
// reload, and per-process keys break resumption across workers).
//
// The ring lives in an anonymous shared mapping made by the first process that builds a
// TLS context (the master, when it loads the config) and inherited by every worker it forks.
// The current key encrypts new tickets and the previous one still decrypts (its tickets are
// renewed); the key rotates every kTicketKeyLifetime, by whichever process sees it first.
#pragma once

#include <openssl/ssl.h>

namespace torii {

// Installs the shared ticket-key callback on `ctx` (creating the ring on first use).
// Returns false when the ring cannot be made (tickets then use OpenSSL's own keys).
bool install_ticket_keys(SSL_CTX *ctx);

// Forces a rotation (tests and operators through a future admin endpoint).
void rotate_ticket_keys();

}  // namespace torii
