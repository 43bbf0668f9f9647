"""The auth plugin (SPEC section 5): API keys from a header or the query, HTTP Basic with
salted hashes (inline and from a file), JWTs signed here with HS256, RS256 and ES256 (exp,
nbf, clock skew, iss, aud, the consumer claim, alg "none" and algorithm confusion), allow
and deny CIDR lists over IPv4 and IPv6 (torii listens on 127.0.0.1 and on [::1]), $consumer
in upstream headers, hide_credentials, 401/403 with their WWW-Authenticate values, config
errors with their lines, and no credential in torii's log.

Keys are made with the openssl CLI; RS256/ES256 tokens are signed with `openssl dgst
-sha256 -sign` (ES256's DER signature turned into JOSE r||s here); HS256 with hmac.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import subprocess
import time
import types

import pytest

import harness
from harness import config, main_block, plugin_block, run_torii, server_block, upstream_block

HS_SECRET = b"hs256-secret-for-the-auth-tests-0123456789"   # >= 32 bytes
HS_FILE_SECRET = b"another-hs256-secret-read-from-a-file-xyz"
KEYS = {"alice": "k-alice-7f3a9c2e51", "bob": "k-bob+/=%&x"}     # bob's needs URL-encoding
PASSWORDS = {"carol": "carol-pw-Z9!", "dave": "dave pw: with colon", "erin": "erin-pw-512"}
ISS, AUD = "https://issuer.test", "api"

SECRETS = []  # every credential sent in this file: none may appear in torii's log


def remember(*values):
    SECRETS.extend(v for v in values if v)
    return values[0] if len(values) == 1 else values


# -- signing helpers ---------------------------------------------------------------------------

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    cp = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=30,
                        check=True)
    return cp.stdout


def der_to_jose(der):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def sign_jwt(alg, claims, key, header=None, raw_sig=False):
    """A compact JWS. key: bytes (HS256) or a private key PEM file (RS256, ES256)."""
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    signing = b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(claims).encode())
    if alg == "HS256":
        sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    elif alg in ("RS256", "ES256"):
        sig = openssl("dgst", "-sha256", "-sign", key, data=signing.encode())
        if alg == "ES256" and not raw_sig:
            sig = der_to_jose(sig)
    else:
        sig = b""
    token = signing + "." + b64u(sig)
    remember(token, b64u(sig))
    return token


def hs256_raw(payload, header=b'{"alg":"HS256"}'):
    """An HS256 token over JSON text exactly as given (repeated names, escapes, odd numbers)."""
    h, p = b64u(header), b64u(payload)
    s = b64u(hmac.new(HS_SECRET, (h + "." + p).encode(), hashlib.sha256).digest())
    remember(s)
    return "%s.%s.%s" % (h, p, s)


def claims(sub="user-1", **kw):
    now = int(time.time())
    c = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def ssha256_by_shell(password):
    """The one-liner of docs/plugins/auth.md, run by bash with openssl."""
    script = ('salt=$(openssl rand -hex 8); printf \'{SSHA256}%s\\n\' "$( { printf \'%s%s\' '
              '"$PW" "$salt" | openssl dgst -sha256 -binary; printf \'%s\' "$salt"; } '
              '| openssl base64 -A)"')
    cp = subprocess.run(["bash", "-c", script], env=dict(os.environ, PW=password),
                        capture_output=True, text=True, timeout=30, check=True)
    return cp.stdout.strip()


def ssha512(password, salt=b"\x00\x01salt\xff"):
    return "{SSHA512}" + base64.b64encode(
        hashlib.sha512(password.encode() + salt).digest() + salt).decode()


def basic(user, password):
    v = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    remember(v.split()[1], password)
    return {"Authorization": v}


def ipv6_loopback_works():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# -- clients --------------------------------------------------------------------------------------

def get(port, path, headers=None, host="127.0.0.1"):
    """GET with headers from a dict, or a list of (name, value) pairs (repeats allowed)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("GET", path)
        pairs = headers.items() if isinstance(headers, dict) else (headers or [])
        for k, v in pairs:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return harness.Response(r.status, r.reason, "HTTP/1.1", harness.Headers(r.getheaders()),
                                r.read())
    finally:
        conn.close()


def hdr(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def ok(port, path, headers=None, host="127.0.0.1"):
    r = get(port, path, headers, host)
    assert r.status == 200, (path, r.status, r.headers, r.body[:200])
    return r.json()


def refused(port, path, headers=None, challenge=None, host="127.0.0.1"):
    """401 with exactly this WWW-Authenticate."""
    r = get(port, path, headers, host)
    assert r.status == 401, (path, r.status, r.body[:200])
    assert r.header("WWW-Authenticate") == challenge, r.headers
    assert r.body == b"unauthorized\n"
    return r


def bearer(token):
    return {"Authorization": "Bearer " + token}


def invalid(why):
    return 'Bearer realm="torii", error="invalid_token", error_description="%s"' % why


# -- the gateway -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gw(module_procs, tmp_path_factory):
    p = module_procs
    d = str(tmp_path_factory.mktemp("auth-keys"))
    rsa_key, rsa_pub = os.path.join(d, "rsa.pem"), os.path.join(d, "rsa.pub.pem")
    ec_key, ec_pub = os.path.join(d, "ec.pem"), os.path.join(d, "ec.pub.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_key)
    openssl("pkey", "-in", rsa_key, "-pubout", "-out", rsa_pub)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec_key)
    openssl("pkey", "-in", ec_key, "-pubout", "-out", ec_pub)
    other_ec = os.path.join(d, "other-ec.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other_ec)
    secret_file = os.path.join(d, "hs.secret")
    with open(secret_file, "wb") as f:
        f.write(HS_FILE_SECRET + b"\n")
    users_file = os.path.join(d, "users")
    with open(users_file, "w") as f:
        f.write("# staff\n\ndave:%s\r\n  erin:%s\n" % (ssha256_by_shell(PASSWORDS["dave"]),
                                                    ssha512(PASSWORDS["erin"])))
    remember(*KEYS.values(), *PASSWORDS.values(), HS_SECRET.decode(), HS_FILE_SECRET.decode())

    b = p.backend("auth")
    port, port4, port6 = harness.free_port(), harness.free_port(), harness.free_port()
    up = upstream_block("api", [b.port], keepalive=8, connect_timeout="1s", read_timeout="5s")
    key_table = {"type": "key", "keys": [{"key": KEYS["alice"], "consumer": "alice"},
                                         {"key": KEYS["bob"], "consumer": "bob"}]}
    consumer_hdr = {"header_rewrite": {"request_set": {"X-Consumer": "$consumer"}}}
    # (an unset $consumer expands to nothing: /open/ brackets it, so that no empty header
    # value goes upstream; main has the fix for the core's memcpy of an empty value)
    open_hdr = {"header_rewrite": {"request_set": {"X-Consumer": "[$consumer]"}}}
    hs = {"type": "jwt", "secret": HS_SECRET.decode(), "issuer": ISS, "audience": AUD}

    def loc(path, auth, rewrite=True):
        plugins = {"auth": auth}
        if rewrite:
            plugins.update(consumer_hdr)
        return {"path": path, "upstream": "api", "plugins": plugins}

    locations = [
        loc("/key/", key_table),
        loc("/keyq/", dict(key_table, header="X-Token", query="apikey")),
        loc("/keyonlyq/", dict(key_table, header="", query="k")),
        loc("/keyhide/", dict(key_table, hide_credentials=True)),
        loc("/keyqhide/", dict(key_table, header="", query="apikey", hide_credentials=True)),
        loc("/basic/", {"type": "basic", "realm": "staff", "users_file": users_file,
                        "users": [{"user": "carol",
                                   "hash": ssha256_by_shell(PASSWORDS["carol"])}]}),
        loc("/basichide/", {"type": "basic", "hide_credentials": True, "users": [
            {"user": "carol", "hash": ssha512(PASSWORDS["carol"])}]}),
        loc("/hs/", hs),
        loc("/hsfile/", {"type": "jwt", "secret_file": secret_file, "clock_skew": "30s"}),
        loc("/rs/", {"type": "jwt", "public_key_file": rsa_pub, "algorithms": ["RS256"]}),
        loc("/es/", {"type": "jwt", "public_key": open(ec_pub).read()}),
        loc("/both/", {"type": "jwt", "secret": HS_SECRET.decode(), "public_key_file": rsa_pub,
                       "algorithms": ["RS256"]}),
        loc("/jwtq/", {"type": "jwt", "secret": HS_SECRET.decode(), "header": "X-JWT",
                       "query": "access_token", "consumer_claim": "client_id"}),
        loc("/jwthide/", dict(hs, hide_credentials=True)),
        loc("/eslow/", {"type": "jwt", "public_key": open(ec_pub).read(), "es256_low_s": True}),
        loc("/noexp/", dict(hs, require_claims=[])),
        loc("/jti/", dict(hs, require_claims=["exp", "jti"])),
        {"path": "/open/", "upstream": "api", "plugins": open_hdr},
    ]
    ip_locations = [
        loc("/deny4/", {"deny": ["127.0.0.0/8"]}, rewrite=False),
        loc("/deny6/", {"deny": ["::1"]}, rewrite=False),
        loc("/allow4/", {"allow": ["127.0.0.1"]}, rewrite=False),
        loc("/allow6/", {"allow": ["::1/128"]}, rewrite=False),
        loc("/wins/", {"allow": ["127.0.0.0/8", "::/0"], "deny": ["127.0.0.1/32"]}, rewrite=False),
        loc("/near/", {"allow": ["127.0.0.2/31", "::2/127", "10.0.0.0/8", "fe80::/10"]},
            rewrite=False),
        loc("/mapped/", {"allow": ["::ffff:127.0.0.0/104"]}, rewrite=False),
        loc("/keyip/", dict(key_table, deny=["::1"], allow=["127.0.0.0/8", "::1"])),
    ]
    text = config(
        main_block(log_level="debug"),
        plugin_block("auth"),
        plugin_block("header_rewrite"),
        up,
        server_block([port], locations),
        server_block([port4], ip_locations),
    )
    if ipv6_loopback_works():
        text = text.replace('listen = ["127.0.0.1:%d"]' % port4,
                            'listen = ["127.0.0.1:%d", "[::1]:%d"]' % (port4, port6))
        assert "[::1]" in text
    t = p.torii(text, wait_ports=[port, port4])
    return types.SimpleNamespace(port=port, port4=port4, port6=port6, torii=t, backend=b,
                                 rsa_key=rsa_key, rsa_pub=rsa_pub, ec_key=ec_key,
                                 other_ec=other_ec, v6=ipv6_loopback_works())


# -- API keys -------------------------------------------------------------------------------------

def test_key_in_header_names_the_consumer(gw):
    d = ok(gw.port, "/key/a", {"X-API-Key": KEYS["alice"]})
    assert hdr(d, "X-Consumer") == ["alice"]
    assert hdr(d, "X-API-Key") == [KEYS["alice"]]  # kept by default
    d = ok(gw.port, "/key/b", {"X-API-Key": KEYS["bob"]})
    assert hdr(d, "X-Consumer") == ["bob"]


def test_key_missing_or_wrong_is_401(gw):
    ch = 'Key realm="torii"'
    refused(gw.port, "/key/a", challenge=ch)
    remember("k-alice-7f3a9c2e5", "wrong-key-123")
    refused(gw.port, "/key/a", {"X-API-Key": "wrong-key-123"}, challenge=ch)
    refused(gw.port, "/key/a", {"X-API-Key": KEYS["alice"][:-1]}, challenge=ch)  # a prefix
    refused(gw.port, "/key/a", {"X-API-Key": KEYS["alice"] + "x"}, challenge=ch)
    refused(gw.port, "/key/a", {"X-API-Key": ""}, challenge=ch)
    # the default header only: a key in the query is not looked at
    refused(gw.port, "/key/a?apikey=" + KEYS["alice"], challenge=ch)


def test_key_in_custom_header_or_query(gw):
    d = ok(gw.port, "/keyq/a", {"X-Token": KEYS["alice"]})
    assert hdr(d, "X-Consumer") == ["alice"]
    # bob's key has + / = % &: percent-encoded in the query, decoded before the lookup
    enc = "".join("%%%02X" % ord(c) for c in KEYS["bob"])
    d = ok(gw.port, "/keyq/a?x=1&apikey=%s&y=2" % enc)
    assert hdr(d, "X-Consumer") == ["bob"]
    assert d["path"] == "/keyq/a?x=1&apikey=%s&y=2" % enc
    ok(gw.port, "/keyq/a?apikey=" + KEYS["alice"])
    # X-API-Key is not a source here
    refused(gw.port, "/keyq/a", {"X-API-Key": KEYS["alice"]}, challenge='Key realm="torii"')
    refused(gw.port, "/keyq/a?apikey=nope", challenge='Key realm="torii"')


def test_key_query_only(gw):
    assert hdr(ok(gw.port, "/keyonlyq/?k=" + KEYS["alice"]), "X-Consumer") == ["alice"]
    refused(gw.port, "/keyonlyq/", {"X-API-Key": KEYS["alice"]}, challenge='Key realm="torii"')


def test_repeated_credentials_are_refused(gw):
    # an upstream reading the other copy must not get a credential we did not check
    ch = 'Key realm="torii"'
    refused(gw.port, "/key/", [("X-API-Key", KEYS["alice"]), ("X-API-Key", KEYS["bob"])],
            challenge=ch)
    refused(gw.port, "/keyq/?apikey=%s&apikey=x" % KEYS["alice"], challenge=ch)
    refused(gw.port, "/keyq/?apikey=%s&apikey" % KEYS["alice"], challenge=ch)
    ok(gw.port, "/keyq/?apikeys=1&apikey=%s&xapikey=2" % KEYS["alice"])  # other names
    auth = basic("carol", PASSWORDS["carol"])["Authorization"]
    refused(gw.port, "/basic/", [("Authorization", auth), ("authorization", auth)],
            challenge='Basic realm="staff", charset="UTF-8"')
    tok = sign_jwt("HS256", claims(), HS_SECRET)
    refused(gw.port, "/hs/", [("Authorization", "Bearer " + tok)] * 2,
            challenge=invalid("the token is given more than once"))


def test_key_hide_credentials(gw):
    d = ok(gw.port, "/keyhide/", {"X-API-Key": KEYS["alice"], "X-Other": "kept"})
    assert hdr(d, "X-API-Key") == [] and hdr(d, "X-Other") == ["kept"]
    assert hdr(d, "X-Consumer") == ["alice"]


def test_key_in_the_query_hidden_from_the_upstream(gw):
    # the argument goes, in whatever spelling it came; the others stay in order
    for spelled in ("apikey", "APIKEY", "api%6Bey"):
        d = ok(gw.port, "/keyqhide/x?a=1&%s=%s&b=2" % (spelled, KEYS["alice"]))
        assert d["path"] == "/keyqhide/x?a=1&b=2", (spelled, d["path"])
        assert hdr(d, "X-Consumer") == ["alice"]
    d = ok(gw.port, "/keyqhide/x?apikey=" + KEYS["alice"])
    assert d["path"] == "/keyqhide/x", d["path"]


def test_consumer_unset_without_auth(gw):
    # no auth on /open/: $consumer is not set
    d = ok(gw.port, "/open/", {"X-API-Key": KEYS["alice"]})
    assert hdr(d, "X-Consumer") == ["[]"]


# -- Basic ---------------------------------------------------------------------------------------

def test_basic_users_inline_and_from_file(gw):
    for user in ("carol", "dave", "erin"):
        d = ok(gw.port, "/basic/x", basic(user, PASSWORDS[user]))
        assert hdr(d, "X-Consumer") == [user]
        assert hdr(d, "Authorization") == [basic(user, PASSWORDS[user])["Authorization"]]
    # the scheme is case-insensitive
    h = basic("carol", PASSWORDS["carol"])
    ok(gw.port, "/basic/x", {"Authorization": h["Authorization"].replace("Basic", "bAsIc")})


def test_basic_refusals(gw):
    ch = 'Basic realm="staff", charset="UTF-8"'
    refused(gw.port, "/basic/x", challenge=ch)
    remember("carol-pw-Z9", "nobody-pw")
    refused(gw.port, "/basic/x", basic("carol", "carol-pw-Z9"), challenge=ch)
    refused(gw.port, "/basic/x", basic("carol", PASSWORDS["dave"]), challenge=ch)
    refused(gw.port, "/basic/x", basic("nobody", "nobody-pw"), challenge=ch)
    refused(gw.port, "/basic/x", basic("Carol", PASSWORDS["carol"]), challenge=ch)
    refused(gw.port, "/basic/x", {"Authorization": "Basic !!!notbase64"}, challenge=ch)
    refused(gw.port, "/basic/x", {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
            challenge=ch)
    refused(gw.port, "/basic/x", {"Authorization": "Bearer abc"}, challenge=ch)


def test_basic_hide_credentials_and_default_realm(gw):
    d = ok(gw.port, "/basichide/", basic("carol", PASSWORDS["carol"]))
    assert hdr(d, "Authorization") == [] and hdr(d, "X-Consumer") == ["carol"]
    refused(gw.port, "/basichide/", challenge='Basic realm="torii", charset="UTF-8"')


# -- JWT -----------------------------------------------------------------------------------------

def test_jwt_each_algorithm(gw):
    d = ok(gw.port, "/hs/", bearer(sign_jwt("HS256", claims("hs-user"), HS_SECRET)))
    assert hdr(d, "X-Consumer") == ["hs-user"]
    assert hdr(d, "Authorization")  # kept by default
    d = ok(gw.port, "/rs/", bearer(sign_jwt("RS256", claims("rs-user"), gw.rsa_key)))
    assert hdr(d, "X-Consumer") == ["rs-user"]
    d = ok(gw.port, "/es/", bearer(sign_jwt("ES256", claims("es-user"), gw.ec_key)))
    assert hdr(d, "X-Consumer") == ["es-user"]
    d = ok(gw.port, "/hsfile/", bearer(sign_jwt("HS256", claims("file-user"), HS_FILE_SECRET)))
    assert hdr(d, "X-Consumer") == ["file-user"]
    # "bearer" in any case
    ok(gw.port, "/hs/", {"Authorization": "bearer " + sign_jwt("HS256", claims(), HS_SECRET)})


def test_jwt_missing_token(gw):
    refused(gw.port, "/hs/", challenge='Bearer realm="torii"')
    refused(gw.port, "/hs/", basic("carol", PASSWORDS["carol"]), challenge='Bearer realm="torii"')


def test_jwt_bad_signatures(gw):
    bad = invalid("the token's signature does not verify")
    remember(b"x" * 40)
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(), b"x" * 40)), challenge=bad)
    good = sign_jwt("HS256", claims(), HS_SECRET)
    h, p, s = good.split(".")
    forged = b64u(json.dumps(claims("admin")).encode())
    refused(gw.port, "/hs/", bearer(".".join([h, forged, s])), challenge=bad)
    sig = bytearray(base64.urlsafe_b64decode(s + "=="))
    sig[0] ^= 1
    refused(gw.port, "/hs/", bearer(".".join([h, p, b64u(bytes(sig))])), challenge=bad)
    refused(gw.port, "/rs/", bearer(sign_jwt("RS256", claims(), gw.rsa_key)[:-4] + "AAAA"),
            challenge=bad)
    refused(gw.port, "/es/", bearer(sign_jwt("ES256", claims(), gw.other_ec)), challenge=bad)
    # ES256 wants the 64-byte JOSE form, not DER
    refused(gw.port, "/es/", bearer(sign_jwt("ES256", claims(), gw.ec_key, raw_sig=True)),
            challenge=bad)


def test_jwt_alg_none_and_wrong_algorithms(gw):
    bad = invalid("the token's algorithm is not accepted")
    for path in ("/hs/", "/rs/", "/es/"):
        refused(gw.port, path, bearer(sign_jwt("none", claims(), None)), challenge=bad)
        refused(gw.port, path, bearer(sign_jwt("HS512", claims(), None)), challenge=bad)
    refused(gw.port, "/hs/", bearer(sign_jwt("RS256", claims(), gw.rsa_key)), challenge=bad)
    refused(gw.port, "/rs/", bearer(sign_jwt("ES256", claims(), gw.ec_key)), challenge=bad)
    # algorithm confusion: HS256 keyed with the RSA public key's PEM
    pem = open(gw.rsa_pub, "rb").read()
    refused(gw.port, "/rs/", bearer(sign_jwt("HS256", claims(), pem)), challenge=bad)
    # /both/ has a secret, but `algorithms` accepts RS256 only
    refused(gw.port, "/both/", bearer(sign_jwt("HS256", claims(), HS_SECRET)), challenge=bad)
    ok(gw.port, "/both/", bearer(sign_jwt("RS256", claims(), gw.rsa_key)))


def test_jwt_expired_and_not_yet_valid(gw):
    now = int(time.time())
    expired = invalid("the token has expired")
    early = invalid("the token is not valid yet")
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(exp=now - 5), HS_SECRET)),
            challenge=expired)
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(exp=now - 0.5), HS_SECRET)),
            challenge=expired)
    refused(gw.port, "/rs/", bearer(sign_jwt("RS256", claims(exp=now - 5), gw.rsa_key)),
            challenge=expired)
    refused(gw.port, "/es/", bearer(sign_jwt("ES256", claims(exp=now - 5), gw.ec_key)),
            challenge=expired)
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(nbf=now + 10), HS_SECRET)),
            challenge=early)
    refused(gw.port, "/es/", bearer(sign_jwt("ES256", claims(nbf=now + 10), gw.ec_key)),
            challenge=early)
    ok(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(nbf=now - 1, exp=now + 5), HS_SECRET)))
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(exp="soon"), HS_SECRET)),
            challenge=invalid("the token's exp is not a number"))


def test_jwt_clock_skew(gw):
    now = int(time.time())
    hsf = lambda **kw: bearer(sign_jwt("HS256", claims(**kw), HS_FILE_SECRET))
    ok(gw.port, "/hsfile/", hsf(exp=now - 10))          # within the 30 s skew
    ok(gw.port, "/hsfile/", hsf(nbf=now + 10))
    refused(gw.port, "/hsfile/", hsf(exp=now - 60), challenge=invalid("the token has expired"))
    refused(gw.port, "/hsfile/", hsf(nbf=now + 60), challenge=invalid("the token is not valid yet"))


def test_jwt_issuer_and_audience(gw):
    hs = lambda **kw: bearer(sign_jwt("HS256", claims(**kw), HS_SECRET))
    ok(gw.port, "/hs/", hs(aud=["other", AUD]))
    bad_iss = invalid("the token's issuer is not accepted")
    bad_aud = invalid("the token's audience is not accepted")
    refused(gw.port, "/hs/", hs(iss="https://evil.test"), challenge=bad_iss)
    refused(gw.port, "/hs/", hs(iss=None), challenge=bad_iss)
    refused(gw.port, "/hs/", hs(aud="other"), challenge=bad_aud)
    refused(gw.port, "/hs/", hs(aud=["other", "more"]), challenge=bad_aud)
    refused(gw.port, "/hs/", hs(aud=None), challenge=bad_aud)
    # /hsfile/ checks neither
    ok(gw.port, "/hsfile/", bearer(sign_jwt("HS256", claims(iss="x", aud="y"), HS_FILE_SECRET)))


def test_jwt_consumer_claim_and_sources(gw):
    tok = sign_jwt("HS256", claims("ignored", client_id="svc-42"), HS_SECRET)
    assert hdr(ok(gw.port, "/jwtq/", {"X-JWT": tok}), "X-Consumer") == ["svc-42"]
    assert hdr(ok(gw.port, "/jwtq/", {"X-JWT": "Bearer " + tok}), "X-Consumer") == ["svc-42"]
    assert hdr(ok(gw.port, "/jwtq/?access_token=" + tok), "X-Consumer") == ["svc-42"]
    refused(gw.port, "/jwtq/", bearer(tok), challenge='Bearer realm="torii"')  # not a source here
    refused(gw.port, "/jwtq/", {"X-JWT": sign_jwt("HS256", claims(), HS_SECRET)},
            challenge=invalid("the token has no usable consumer claim"))
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(sub=None), HS_SECRET)),
            challenge=invalid("the token has no usable consumer claim"))
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(sub=42), HS_SECRET)),
            challenge=invalid("the token has no usable consumer claim"))
    # escapes in claims are decoded: "\u0063arol" is carol
    tok = hs256_raw(('{"sub":"\\u0063arol","iss":"%s","aud":"%s","exp":%d}'
                     % (ISS, AUD, time.time() + 60)).encode())
    assert hdr(ok(gw.port, "/hs/", bearer(tok)), "X-Consumer") == ["carol"]


def test_jwt_malformed(gw):
    bad = invalid("the token is malformed")
    good = sign_jwt("HS256", claims(), HS_SECRET)
    h, p, s = good.split(".")
    for tok in ("abc", "a.b", good + ".x", h + "." + p + ".!!", "e30.e30.", "bm90IGpzb24.e30.e30",
                b64u(b'{"alg":"HS256"') + "." + p + "." + s, b64u(b'{"alg":"HS256","alg":"none"}')
                + "." + p + "." + s):
        remember(tok)
        refused(gw.port, "/hs/", bearer(tok), challenge=bad)
    # critical header parameters are refused
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", claims(), HS_SECRET,
                                             header={"crit": ["exp"], "exp": 1})),
            challenge=invalid("the token has critical header parameters this gateway does not "
                              "understand"))
    # claims that are not an object (the signature is good)
    refused(gw.port, "/hs/", bearer(hs256_raw(b'["sub"]')),
            challenge=invalid("the token's claims are not a JSON object"))


def test_jwt_hide_credentials(gw):
    tok = sign_jwt("HS256", claims("hidden"), HS_SECRET)
    d = ok(gw.port, "/jwthide/", bearer(tok))
    assert hdr(d, "Authorization") == [] and hdr(d, "X-Consumer") == ["hidden"]


# -- allow / deny ------------------------------------------------------------------------------

def status(gw, path, family, headers=None):
    if family == 6:
        return get(gw.port6, path, headers, host="::1")
    return get(gw.port4, path, headers)


@pytest.mark.parametrize("path,v4,v6", [
    ("/deny4/", 403, 200),
    ("/deny6/", 200, 403),
    ("/allow4/", 200, 403),
    ("/allow6/", 403, 200),
    ("/wins/", 403, 200),      # deny wins over allow
    ("/near/", 403, 403),      # neighbouring blocks do not cover 127.0.0.1 or ::1
    ("/mapped/", 200, 403),    # an IPv4-mapped entry is an IPv4 rule
])
def test_allow_deny(gw, path, v4, v6):
    r = status(gw, path, 4)
    assert r.status == v4, (path, r.status)
    if r.status == 403:
        assert r.body == b"forbidden\n" and r.header("WWW-Authenticate") is None
    else:
        assert r.json()["path"] == path
    if not gw.v6:
        pytest.skip("no IPv6 loopback on this machine")
    r = status(gw, path, 6)
    assert r.status == v6, (path, r.status)
    if r.status == 403:
        assert r.body == b"forbidden\n" and r.header("WWW-Authenticate") is None


def test_allow_deny_before_credentials(gw):
    good = {"X-API-Key": KEYS["alice"]}
    assert hdr(status(gw, "/keyip/", 4, good).json(), "X-Consumer") == ["alice"]
    r = status(gw, "/keyip/", 4)
    assert r.status == 401 and r.header("WWW-Authenticate") == 'Key realm="torii"'
    if not gw.v6:
        pytest.skip("no IPv6 loopback on this machine")
    r = status(gw, "/keyip/", 6, good)  # ::1 is allowed and denied: deny wins, key or not
    assert r.status == 403 and r.header("WWW-Authenticate") is None


# -- hardening: credentials spelled another way -------------------------------------------------
# Each attack below either slipped a credential torii never checked past it, or gave one
# token several spellings. docs/reliability.md ("Credentials") lists them with their results.

def test_query_argument_names_are_compared_decoded(gw):
    """`api%6Bey` is `apikey` to the upstream: a second copy is a repeated argument (401),
    not an unrelated one that torii lets through unchecked."""
    ch = 'Key realm="torii"'
    alice, bob = KEYS["alice"], quote_all(KEYS["bob"])
    for q in ("apikey=%s&api%%6Bey=%s", "apikey=%s&api%%6bey=%s", "%%61pikey=%s&apikey=%s",
              "apikey=%s&apikey%%00=%s", "apikey=%s&apikey%%00junk=%s", "apikey=%s&APIKEY=%s",
              "apikey=%s&Api%%4Bey=%s"):
        r = refused(gw.port, "/keyq/?" + q % (alice, bob), challenge=ch)
        assert r.header("X-Backend") is None  # answered by torii, never forwarded
    # one argument, spelled encoded or in capitals: it is the key (an upstream may read it so)
    assert hdr(ok(gw.port, "/keyq/?APIKEY=" + alice), "X-Consumer") == ["alice"]
    d = ok(gw.port, "/keyq/x?api%%6Bey=%s&y=1" % alice)
    assert hdr(d, "X-Consumer") == ["alice"]
    assert d["path"] == "/keyq/x?api%%6Bey=%s&y=1" % alice  # the query goes up as sent
    # '+' is a space in names as in values: "api+key" is another argument
    assert hdr(ok(gw.port, "/keyq/?apikey=%s&api+key=%s" % (alice, bob)), "X-Consumer") == ["alice"]
    # a token for the query argument access_token, with its name encoded twice over
    tok = sign_jwt("HS256", claims("ignored", client_id="svc-7"), HS_SECRET)
    refused(gw.port, "/jwtq/?access_token=%s&access%%5Ftoken=%s" % (tok, tok),
            challenge=invalid("the token is given more than once"))
    # the header and the query both carrying one: the upstream may read either
    refused(gw.port, "/keyq/?apikey=" + bob, {"X-Token": alice}, challenge=ch)
    refused(gw.port, "/jwtq/?access_token=" + tok, {"X-JWT": tok},
            challenge=invalid("the token is given more than once"))


def quote_all(s):
    return "".join("%%%02X" % b for b in s.encode())


def test_nul_bytes_in_credentials_are_refused(gw):
    ch = 'Basic realm="staff", charset="UTF-8"'
    # "carol\0junk" was carol to the C-string lookup (and someone else to the upstream)
    for user, pw in (("carol\0junk", PASSWORDS["carol"]), ("carol", PASSWORDS["carol"] + "\0"),
                     ("\0carol", PASSWORDS["carol"])):
        v = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
        remember(v)
        refused(gw.port, "/basic/", {"Authorization": "Basic " + v}, challenge=ch)
    ok(gw.port, "/basic/", basic("carol", PASSWORDS["carol"]))
    # %00 in a key or a token from the query
    refused(gw.port, "/keyq/?apikey=%s%%00junk" % KEYS["alice"], challenge='Key realm="torii"')
    refused(gw.port, "/keyonlyq/?k=%%00%s" % KEYS["alice"], challenge='Key realm="torii"')
    tok = sign_jwt("HS256", claims("ignored", client_id="svc-7"), HS_SECRET)
    refused(gw.port, "/jwtq/?access_token=%s%%00" % tok,
            challenge=invalid("the token is malformed"))
    assert "the API key holds a NUL byte" in gw.torii.log()


def b64u_variants(seg):
    """Other spellings of the same bytes: padded, and with the unused low bits set."""
    raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    out = [seg + "=" * (-len(seg) % 4 or 1), seg + "=="]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 4, 3: 2}.get(len(seg) % 4)
    if unused:
        v = alphabet.index(seg[-1])
        tweaked = seg[:-1] + alphabet[v | 1]
        assert tweaked != seg
        assert base64.urlsafe_b64decode(tweaked + "=" * (-len(seg) % 4)) == raw  # lenient: same
        out.append(tweaked)
    return out


def test_jwt_base64url_is_strict(gw):
    bad = invalid("the token is malformed")
    good = sign_jwt("HS256", claims(), HS_SECRET)
    ok(gw.port, "/hs/", bearer(good))
    h, p, s = good.split(".")
    assert len(s) % 4 == 3  # 32 bytes: the last character has 2 unused bits
    tried = 0
    for part in range(3):
        segs = [h, p, s]
        for v in b64u_variants(segs[part]):
            segs[part] = v
            tok = ".".join(segs)
            remember(tok)
            refused(gw.port, "/hs/", bearer(tok), challenge=bad)
            tried += 1
    assert tried >= 7
    # characters of the other alphabet (base64's + and /) are not base64url
    for c in "+/ =":
        refused(gw.port, "/hs/", bearer(h + "." + p + "." + s[:10] + c + s[11:]), challenge=bad)


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def es256_twins(token):
    """The same ES256 token with its low-S and its high-S signature (s and n - s)."""
    h, p, s = token.split(".")
    sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    r, sv = sig[:32], int.from_bytes(sig[32:], "big")
    low, high = min(sv, P256_N - sv), max(sv, P256_N - sv)
    out = ["%s.%s.%s" % (h, p, b64u(r + x.to_bytes(32, "big"))) for x in (low, high)]
    remember(*out)
    return out


def test_es256_high_s_is_refused_with_es256_low_s(gw):
    bad = invalid("the token's signature does not verify")
    for i in range(3):
        low, high = es256_twins(sign_jwt("ES256", claims("es-%d" % i), gw.ec_key))
        assert hdr(ok(gw.port, "/eslow/", bearer(low)), "X-Consumer") == ["es-%d" % i]
        refused(gw.port, "/eslow/", bearer(high), challenge=bad)
        # without es256_low_s both verify (what OpenSSL, Go and Java signers produce)
        ok(gw.port, "/es/", bearer(low))
        ok(gw.port, "/es/", bearer(high))


def test_jwt_json_limits(gw):
    """The claims' JSON: nesting, "\\u0000", numbers, repeated names, UTF-8."""
    def tok(extra=b"", sub=b'"nn"', exp=b"%d" % (time.time() + 60)):
        return bearer(hs256_raw(b'{"sub":%s,"iss":"%s","aud":"%s","exp":%s%s}'
                                % (sub, ISS.encode(), AUD.encode(), exp, extra)))
    bad = invalid("the token's claims are not a JSON object")
    assert hdr(ok(gw.port, "/hs/", tok()), "X-Consumer") == ["nn"]
    # 16 levels of nesting below the claims object pass, 17 do not
    ok(gw.port, "/hs/", tok(b',"x":' + b"[" * 16 + b"]" * 16))
    refused(gw.port, "/hs/", tok(b',"x":' + b"[" * 17 + b"]" * 17), challenge=bad)
    refused(gw.port, "/hs/", tok(b',"x":' + b'{"a":' * 17 + b"1" + b"}" * 17), challenge=bad)
    # "\u0000" does no harm in a claim nobody reads; the consumer claim cannot hold one
    ok(gw.port, "/hs/", tok(b',"note":"a\\u0000b"'))
    refused(gw.port, "/hs/", tok(sub=b'"nn\\u0000x"'),
            challenge=invalid("the token has no usable consumer claim"))
    # exp as an integer or not; a large number elsewhere is no reason to refuse
    ok(gw.port, "/hs/", tok(b',"big":1234567890123456789012345', exp=b"%d.5" % (time.time() + 60)))
    refused(gw.port, "/hs/", tok(exp=b"%d.5e0" % (time.time() - 60)),
            challenge=invalid("the token has expired"))
    ok(gw.port, "/hs/", tok(exp=b"%d." % (time.time() + 60) + b"0" * 64))  # was "not a number"
    # refused since the parser is jansson (the hand-written one let these through): a
    # number past a double's range (it was read as infinity: a token that never expired),
    # a repeated name that is not one of the claims read, "\u0000" in a name, bytes that
    # are not UTF-8
    refused(gw.port, "/hs/", tok(exp=b"1e999"), challenge=bad)
    refused(gw.port, "/hs/", tok(b',"x":1,"x":2'), challenge=bad)
    refused(gw.port, "/hs/", tok(b',"a\\u0000b":1'), challenge=bad)
    refused(gw.port, "/hs/", tok(b',"note":"\xff"'), challenge=bad)


def test_jwt_require_claims(gw):
    hs = lambda **kw: bearer(sign_jwt("HS256", claims(**kw), HS_SECRET))
    no_exp = invalid("the token has no exp claim")
    # exp is required by default: a token without one would never expire
    refused(gw.port, "/hs/", hs(exp=None), challenge=no_exp)
    refused(gw.port, "/hs/", bearer(sign_jwt("HS256", dict(claims(), exp=None), HS_SECRET)),
            challenge=no_exp)  # "exp": null
    refused(gw.port, "/es/", bearer(sign_jwt("ES256", claims(exp=None), gw.ec_key)),
            challenge=no_exp)
    # require_claims = [] drops the requirement (exp is still checked when present)
    ok(gw.port, "/noexp/", hs(exp=None))
    refused(gw.port, "/noexp/", hs(exp=int(time.time()) - 5),
            challenge=invalid("the token has expired"))
    # require_claims = ["exp", "jti"]
    refused(gw.port, "/jti/", hs(), challenge=invalid("the token has no jti claim"))
    refused(gw.port, "/jti/", hs(jti="j-1", exp=None), challenge=no_exp)
    assert hdr(ok(gw.port, "/jti/", hs(sub="with-jti", jti="j-1")), "X-Consumer") == ["with-jti"]
    # a repeated required claim makes the token invalid rather than letting one copy win
    tok = hs256_raw(('{"sub":"x","iss":"%s","aud":"%s","exp":%d,"jti":"a","jti":"b"}'
                     % (ISS, AUD, time.time() + 60)).encode())
    refused(gw.port, "/jti/", bearer(tok),
            challenge=invalid("the token's claims are not a JSON object"))


def test_access_log_masks_query_credentials(procs, tmp_path):
    """auth's `query` names (registered through host->log_mask_query_arg) and the built-in
    credential names are written as NAME=*** in the access log, however the name is spelled."""
    b = procs.backend("alog")
    port = harness.free_port()
    log_path = os.path.join(str(tmp_path), "access.log")
    keys = {"type": "key", "header": "", "query": "sesame",
            "keys": [{"key": KEYS["alice"], "consumer": "alice"}]}
    jwt = {"type": "jwt", "secret": HS_SECRET.decode(), "query": "access_token"}
    t = procs.torii(config(
        main_block(access_log=log_path),
        plugin_block("auth"),
        upstream_block("api", [b.port]),
        server_block([port], [
            {"path": "/k/", "upstream": "api", "plugins": {"auth": keys}},
            {"path": "/t/", "upstream": "api", "plugins": {"auth": jwt}},
            {"path": "/open/", "upstream": "api"},
        ])))
    tok = sign_jwt("HS256", claims(), HS_SECRET)
    leaked = remember("open-apikey-1234", "open-password-99", "wrong-sesame-key", "enc-secret-777")
    sent = [
        ("/k/a?x=1&sesame=%s&y=2" % KEYS["alice"], 200, "/k/a?x=1&sesame=***&y=2"),
        ("/k/a?sesa%%6De=%s" % KEYS["alice"], 200, "/k/a?sesa%6De=***"),
        ("/k/a?sesame=" + leaked[2], 401, "/k/a?sesame=***"),
        ("/t/?access_token=" + tok, 200, "/t/?access_token=***"),
        ("/open/?apikey=%s&password=%s&page=2&key" % leaked[:2], 200,
         "/open/?apikey=***&password=***&page=2&key"),
        ("/open/?Api%%5FKey=%s&SESAME=%s&empty=" % (leaked[3], leaked[3]), 200,
         "/open/?Api%5FKey=***&SESAME=***&empty="),
        ("/open/?page=3", 200, "/open/?page=3"),
    ]
    for path, status, _ in sent:
        assert get(port, path).status == status, path
    # written at least once a second: wait (bounded) for every line
    lines = harness.wait_until(lambda: os.path.exists(log_path) and len(
        open(log_path).read().splitlines()) >= len(sent) and open(log_path).read(), 5.0)
    assert lines, "access log not written: %r" % t.log()[-2000:]
    for _, status, logged in sent:
        assert '"GET %s HTTP/1.1" %d ' % (logged, status) in lines, (logged, lines)
    for secret in (KEYS["alice"], tok, tok.split(".")[2]) + leaked:
        assert secret not in lines, "a credential in the access log: %r" % secret[:12]


# -- logs -------------------------------------------------------------------------------------------

def test_zz_no_credentials_in_the_log(gw):
    """Runs last in this file: every credential sent above, good or bad, is absent from
    torii's error log (at log_level = "debug"), which does record the refusals."""
    log = gw.torii.log()
    assert re.search(r'auth: 401 for 127\.0\.0\.1 on location "/key/": unknown API key', log), \
        log[-3000:]
    assert 'auth: 403 for 127.0.0.1 on location "/deny4/": address denied' in log
    assert 'consumer "alice"' in log
    assert len(SECRETS) > 50
    for s in set(SECRETS):
        s = s.decode() if isinstance(s, bytes) else s
        if len(s) >= 8:
            assert s not in log, "a credential appears in torii's log: %r" % s[:12]
    for user, pw in PASSWORDS.items():
        assert pw not in log


# -- config errors ------------------------------------------------------------------------------

def line_of(text, needle):
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, "%r found on lines %r of the config" % (needle, hits)
    return hits[0]


def config_error(tmp_path, auth, needle, message):
    """`torii -t` refuses a config whose auth table is `auth`, naming FILE:LINE of `needle`
    and the message."""
    text = config(main_block(), plugin_block("auth"),
                  server_block([harness.free_port()], [
                      {"path": "/", "return": {"status": 200, "body": "x\n"},
                       "plugins": {"auth": auth}}]))
    path = os.path.join(str(tmp_path), "torii.toml")
    with open(path, "w") as f:
        f.write(text)
    cp = run_torii(["-t", "-c", path])
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    line = line_of(text, needle)
    assert re.search(re.escape(path) + r":%d:\d+: plugin \"auth\": " % line, cp.stderr), \
        "expected %s:%d: (the line of %r) in %r" % (path, line, needle, cp.stderr)
    assert message in cp.stderr, cp.stderr
    return cp.stderr


KEY = [{"key": "k1", "consumer": "c1"}]


def test_config_errors(tmp_path):
    ce = lambda auth, needle, msg: config_error(tmp_path, auth, needle, msg)
    ce({}, "[server.location.plugins.auth]", "set type (key, basic, jwt) and/or allow/deny")
    ce({"type": "oauth"}, "type =", 'type: "oauth" is not key, basic or jwt')
    ce({"typo": 1, "type": "key", "keys": KEY}, "typo =", 'unknown key "typo"')
    ce({"allow": ["10.0.0.0/33"]}, "allow =", 'allow: [0] = "10.0.0.0/33": prefix length over 32')
    ce({"deny": ["::1", "fe80::/129"]}, "deny =", 'deny: [1] = "fe80::/129": prefix length over 128')
    ce({"deny": ["10.1.2.3/8"]}, "deny =", "bits set past the prefix length")
    ce({"allow": ["localhost"]}, "allow =", "not an address or CIDR block")
    ce({"allow": "127.0.0.1"}, "allow =", "allow")
    ce({"type": "key"}, "[server.location.plugins.auth]", "type = \"key\" needs keys")
    ce({"type": "key", "keys": [{"key": "k1"}]}, "keys =", "keys[0] needs a consumer name")
    ce({"type": "key", "keys": [{"key": "k1", "consumer": "a", "x": 1}]}, "keys =",
       'unknown key "x"')
    ce({"type": "key", "keys": KEY + [{"key": "k1", "consumer": "c2"}]}, "keys =",
       "plugin \"auth\": keys[1] repeats the key of keys[0]")
    ce({"type": "key", "keys": KEY, "secret": "s" * 40}, "secret =",
       'secret: applies to type = "jwt" only')
    ce({"deny": ["::1"], "hide_credentials": True}, "hide_credentials =",
       "hide_credentials: applies to a type")
    ce({"type": "key", "keys": KEY, "header": "X Bad"}, "header =", "not a header name")
    ce({"type": "key", "keys": KEY, "realm": 'a"b'}, "realm =", "realm: cannot hold quotes")
    ce({"type": "basic"}, "[server.location.plugins.auth]", 'type = "basic" needs users')
    ce({"type": "basic", "users": [{"user": "u", "hash": "{MD5}abc"}]}, "users =",
       "unknown hash scheme")
    ce({"type": "basic", "users": [{"user": "u", "hash": "{SSHA256}" + "A" * 40}]}, "users =",
       "the hash is too short")
    ce({"type": "basic", "users": [{"user": "a:b", "hash": ssha512("x")}]}, "users =",
       "plugin \"auth\": users[0]: user names cannot contain ':'")
    ce({"type": "basic", "users_file": "users.txt"}, "users_file =", "use an absolute path")
    missing = os.path.join(str(tmp_path), "nope")
    ce({"type": "basic", "users_file": missing}, "users_file =", 'cannot read "%s"' % missing)
    uf = os.path.join(str(tmp_path), "users")
    with open(uf, "w") as f:
        f.write("# c\nok:%s\n\nbroken line\n" % ssha512("pw"))
    ce({"type": "basic", "users_file": uf}, "users_file =", "%s:4: expected user:" % uf)
    with open(uf, "w") as f:
        f.write("ok:%s\nok:%s\n" % (ssha512("pw"), ssha512("pw2")))
    ce({"type": "basic", "users_file": uf}, "users_file =", "%s:2: this user is listed twice" % uf)
    ce({"type": "jwt"}, "[server.location.plugins.auth]", 'type = "jwt" needs a key')
    ce({"type": "jwt", "secret": "short"}, "secret =", "at least 32 bytes (it has 5)")
    ce({"type": "jwt", "secret": "s" * 32, "secret_file": "/x"}, "secret_file =",
       "set secret or secret_file, not both")
    ce({"type": "jwt", "secret": "s" * 32, "algorithms": ["HS256", "none"]}, "algorithms =",
       'algorithms: [1] = "none": supported are HS256, RS256 and ES256')
    ce({"type": "jwt", "secret": "s" * 32, "algorithms": ["RS256"]}, "algorithms =",
       "RS256 is listed but no RSA public_key is configured")
    ce({"type": "jwt", "public_key": "not a pem"}, "public_key =", "not a PEM public key")
    ce({"type": "jwt", "secret": "s" * 32, "clock_skew": "soon"}, "clock_skew =", "clock_skew")
    ce({"type": "jwt", "secret": "s" * 32, "consumer_claim": ""}, "consumer_claim =",
       "consumer_claim: must be 1 to 63 bytes")
    ce({"type": "jwt", "secret": "s" * 32, "require_claims": ["exp", "a b"]}, "require_claims =",
       "require_claims: [1]: claim names are 1 to 63 printable bytes without spaces")
    ce({"type": "jwt", "secret": "s" * 32, "require_claims": ["c%d" % i for i in range(17)]},
       "require_claims =", "require_claims: at most 16 claims")
    ce({"type": "jwt", "secret": "s" * 32, "require_claims": "exp"}, "require_claims =",
       "require_claims")
    ce({"type": "key", "keys": KEY, "es256_low_s": True}, "es256_low_s =",
       'es256_low_s: applies to type = "jwt" only')
    ce({"type": "jwt", "secret": "s" * 32, "es256_low_s": "yes"}, "es256_low_s =", "es256_low_s")
    ce({"type": "key", "keys": [{"key": "k\0x", "consumer": "c"}]}, "keys =",
       "keys[0]: a key cannot hold a NUL byte")
    ce({"type": "key", "keys": KEY, "query": "a\tb"}, "query =", "not a query argument name")
    ce({"type": "key", "keys": KEY, "query": "q" * 65}, "query =",
       "query: at most 64 bytes (the access log masks it)")
    # keys the type does not use
    ce({"type": "jwt", "secret": "s" * 32, "users_file": "/x"}, "users_file =",
       'users_file: applies to type = "basic" only')


def test_config_errors_on_keys(tmp_path):
    d = str(tmp_path)
    small, p384 = os.path.join(d, "small.pem"), os.path.join(d, "p384.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", small)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", p384)
    small_pub = openssl("pkey", "-in", small, "-pubout").decode()
    p384_pub = openssl("pkey", "-in", p384, "-pubout").decode()
    config_error(tmp_path, {"type": "jwt", "public_key": small_pub}, "public_key =",
                 "RSA keys under 2048 bits are refused (this one has 1024)")
    config_error(tmp_path, {"type": "jwt", "public_key": p384_pub}, "public_key =",
                 "ES256 needs a P-256 (prime256v1) key, not secp384r1")
    ed = os.path.join(d, "ed.pem")
    openssl("genpkey", "-algorithm", "ED25519", "-out", ed)
    pub_file = os.path.join(d, "ed.pub")
    openssl("pkey", "-in", ed, "-pubout", "-out", pub_file)
    config_error(tmp_path, {"type": "jwt", "public_key_file": pub_file}, "public_key_file =",
                 "only RSA (RS256) and EC P-256 (ES256) keys are supported")


def test_config_ok_and_secrets_not_in_errors(tmp_path):
    def check(locations):
        text = config(main_block(), plugin_block("auth"),
                      server_block([harness.free_port()], locations))
        path = os.path.join(str(tmp_path), "torii.toml")
        with open(path, "w") as f:
            f.write(text)
        return run_torii(["-t", "-c", path])

    ret = {"status": 200, "body": "x\n"}
    cp = check([
        {"path": "/", "return": ret,
         "plugins": {"auth": {"type": "jwt", "secret": "tiny-secret-value"}}},
        {"path": "/k/", "return": ret, "plugins": {"auth": {"type": "key", "keys": [
            {"key": "dup-key-value-1", "consumer": "a"},
            {"key": "dup-key-value-1", "consumer": "b"}]}}},
    ])
    assert cp.returncode == 1 and "tiny-secret-value" in open(
        os.path.join(str(tmp_path), "torii.toml")).read()
    assert "tiny-secret-value" not in cp.stderr and "dup-key-value-1" not in cp.stderr, cp.stderr
    cp = check([
        {"path": "/", "return": ret, "plugins": {"auth": {"allow": ["127.0.0.1", "::1"]}}},
        {"path": "/k/", "return": ret, "plugins": {"auth": {"type": "key", "keys": KEY,
                                                            "query": "k", "realm": "r"}}},
    ])
    assert cp.returncode == 0 and re.search(r"\bok\b", cp.stdout), cp.stderr
