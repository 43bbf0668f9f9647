"""The drop-in story of SPEC section 3, as a user would run it: install torii with its
header, build docs/examples/hello-plugin out of tree against the installed header only,
list it in a config, and see its header on responses. No rebuild of torii."""

import os
import shutil
import subprocess

import harness
from harness import config, main_block, server_block

REPO = os.path.dirname(os.path.dirname(harness.HERE))
EXAMPLE = os.path.join(REPO, "docs", "examples", "hello-plugin")


def run_prefix(prefix):
    """The prefix the build was configured with (what installed files name)."""
    cache = open(os.path.join(harness.build_dir(), "CMakeCache.txt")).read()
    for line in cache.splitlines():
        if line.startswith("CMAKE_INSTALL_PREFIX:"):
            return line.split("=", 1)[1]
    return str(prefix)


def test_hello_plugin_builds_out_of_tree_and_loads(procs, tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", harness.build_dir(), "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=120)
    assert (prefix / "include" / "torii" / "plugin.h").is_file()
    assert (prefix / "bin" / "torii").is_file()
    assert (prefix / "lib" / "torii" / "plugins" / "round_robin.so").is_file()

    # What a package has besides: a default config pointing at the installed plugins, the
    # systemd unit, the man page, the docs.
    etc = (prefix / "etc" / "torii" / "torii.toml").read_text()
    assert 'plugin_dir = "%s/lib/torii/plugins"' % run_prefix(prefix) in etc
    assert (prefix / "lib" / "systemd" / "system" / "torii.service").is_file()
    assert (prefix / "share" / "man" / "man8" / "torii.8").is_file()
    assert (prefix / "share" / "doc" / "torii" / "upstreams.md").is_file()

    # pkg-config finds the header (the tree may have moved since configure: --define-prefix).
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    pc = lambda *a: subprocess.run(["pkg-config", "--define-prefix"] + list(a) + ["torii"],
                                   capture_output=True, text=True, env=env, check=True).stdout
    cflags = pc("--cflags").strip()
    assert cflags == "-I%s" % (prefix / "include"), cflags
    assert pc("--variable=plugindir").strip() == str(prefix / "lib" / "torii" / "plugins")

    # The example's own Makefile, in a copy outside the tree, with only the installed header
    # as pkg-config names it (TORII_PREFIX points nowhere).
    src = tmp_path / "hello-plugin"
    shutil.copytree(EXAMPLE, src)
    build = subprocess.run(["make", "-C", str(src), "TORII_PREFIX=/nonexistent",
                            "TORII_CFLAGS=%s" % cflags],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    so = src / "hello.so"
    assert so.is_file()

    port, backend_port = harness.free_port(), harness.free_port()
    cfg = config(
        main_block(plugin_dir=str(prefix / "lib" / "torii" / "plugins")),
        '[[plugin]]\nname = "hello"\npath = "%s"\n' % so,
        server_block([port], [
            {"path": "/", "return": {"status": 200, "body": "plain\n"}},
        ]),
        '[server.location.plugins.hello]\ngreeting = "hi from a plugin"\n',
    )
    t = harness.Torii(cfg, workdir=str(tmp_path / "run"))
    procs.items.append(t)
    old = os.environ.get("TORII_BIN")
    os.environ["TORII_BIN"] = str(prefix / "bin" / "torii")
    try:
        t.start()
    finally:
        if old is None:
            del os.environ["TORII_BIN"]
        else:
            os.environ["TORII_BIN"] = old
    status, headers, body = harness.curl("http://127.0.0.1:%d/" % port)
    assert status == 200
    assert headers.get("x-hello") == "hi from a plugin"
    assert headers.get("x-hello-client") == "127.0.0.1"  # var_ref/var_get (ABI 1.3)
    assert body == b"plain\n"


def test_hello_plugin_rejects_unknown_keys_with_file_and_line(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", harness.build_dir(), "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=120)
    src = tmp_path / "hello-plugin"
    shutil.copytree(EXAMPLE, src)
    subprocess.run(["make", "-C", str(src), "TORII_PREFIX=%s" % prefix], check=True,
                   capture_output=True, timeout=120)
    port = harness.free_port()
    text = config(
        main_block(),
        '[[plugin]]\nname = "hello"\npath = "%s"\n' % (src / "hello.so"),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "x"}}]),
        '[server.location.plugins.hello]\ngreting = "typo"\n',
    )
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = text.splitlines().index('greting = "typo"') + 1
    res = harness.run_torii(["-t", "-c", str(path)])
    assert res.returncode == 1
    assert '%s:%d:1: plugin "hello": unknown key "greting"' % (path, line) in res.stderr, res.stderr
