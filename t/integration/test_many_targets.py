"""An upstream of 200 targets with a plugin that keeps all but one out (peer_admit): the
request walks the refused targets once each and reaches the allowed one. (A 64-bit tried
mask made targets from the 65th on look untried forever: the worker recursed on one.)"""

import harness
from harness import config, main_block, plugin_block, request, server_block, upstream_block

TARGETS = 200


def test_vetoes_over_200_targets_reach_the_allowed_one(procs):
    live = procs.backend("live")
    port = harness.free_port()
    # Targets that are never connected to (the plugin refuses them before any connect).
    refused = ["127.0.0.2:%d" % (20000 + i) for i in range(TARGETS - 1)]
    procs.torii(config(
        main_block(),
        plugin_block("veto", path=harness.test_plugin_dir() + "/veto.so"),
        plugin_block("chash"),
        # chash sends one client to one target: after a veto it must be told which targets
        # were tried, or it picks the same one again.
        upstream_block("many", refused + [live.port], retries=0, balancer="chash",
                       hash_key="$remote_addr"),
        server_block([port], [{
            "path": "/", "upstream": "many",
            "plugins": {"veto": {"allow": "127.0.0.1:%d" % live.port}},
        }]),
    ))
    for i in range(5):
        r = request(port, "GET", "/echo", timeout=10, headers={"X-Round": str(i)})
        assert r.status == 200
        assert r.json()["backend"] == "live"
