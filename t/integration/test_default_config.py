"""The default conf/torii.toml as `make run` starts it, driven by the README's curl lines:
torii's own answer, the demo upstream through header_rewrite, the rate limit's 429, and the
admin endpoints (/status, /upstreams with the active check, /metrics from stats).

The config is used as shipped except for what a test must change: its ports (taken free
ones instead of 8080, 8081 and 9901), plugin_dir (this build's) and pid_file.
"""

import json
import os
import re

import harness

REPO = os.path.dirname(os.path.dirname(harness.HERE))
CONF = os.path.join(REPO, "conf", "torii.toml")


def shipped_config(tmp_path):
    text = open(CONF).read()
    ports = {}
    for fixed in (8080, 8081, 9901):
        assert '127.0.0.1:%d"' % fixed in text, "conf/torii.toml no longer uses port %d" % fixed
        ports[fixed] = harness.free_port()
        text = text.replace('127.0.0.1:%d"' % fixed, '127.0.0.1:%d"' % ports[fixed])
    text = re.sub(r'(?m)^plugin_dir = .*$', 'plugin_dir = "%s"' % harness.plugin_dir(), text)
    text = re.sub(r'(?m)^pid_file = .*$', 'pid_file = "%s"' % (tmp_path / "torii.pid"), text)
    return text, ports


def curl(*args):
    return harness.curl(*args)


def test_readme_curl_lines_against_the_default_config(procs, tmp_path):
    text, ports = shipped_config(tmp_path)
    assert harness.run_torii(["-t", "-c", CONF]).stdout.strip() == "ok"
    t = procs.torii(text)
    web, admin = ports[8080], ports[9901]

    r = curl("http://127.0.0.1:%d/" % web)
    assert r.status == 200 and r.body == b"torii is running\n", r

    r = curl("http://127.0.0.1:%d/api/hello" % web)
    assert r.status == 200 and r.body == b"hello from the demo upstream\n", r
    assert r.headers.get("x-demo") == "yes", r.headers
    assert r.headers.get("x-upstream") == "127.0.0.1:%d" % ports[8081], r.headers

    # The README's loop: the burst of 5 is spent (one above already), so a 429 comes.
    codes = [curl("http://127.0.0.1:%d/api/hello" % web).status for _ in range(6)]
    assert 429 in codes and codes[0] == 200, codes
    limited = curl("http://127.0.0.1:%d/api/hello" % web)
    assert limited.status == 429 and limited.headers.get("retry-after"), limited

    # The README's "open the dashboard" (test_dashboard.py drives it in a browser).
    page = curl("http://127.0.0.1:%d/" % admin)
    assert page.status == 200 and b"<title>torii dashboard</title>" in page.body, page

    status = json.loads(curl("http://127.0.0.1:%d/status" % admin).body)
    assert status["workers"], status

    # The demo upstream's active check passes (the fleet probes it once per interval).
    def checked():
        doc = harness.upstream_doc(admin, "api")
        target = doc["targets"][0]
        return target["check"] and target["check"]["result"] == "passed" and target
    target = harness.wait_until(checked, 10, interval=0.2)
    assert target and target["health"] == "up" and target["check"]["message"] == "HTTP 200", \
        harness.upstream_doc(admin, "api")

    metrics = curl("http://127.0.0.1:%d/metrics" % admin).body.decode()
    assert re.search(r'torii_http_requests_total\{[^}]*location="/api/"[^}]*'
                     r'status_class="4xx"[^}]*\} [1-9]', metrics), metrics[:2000]
    assert "torii_http_request_duration_seconds_bucket" in metrics
    t.stop()
