#include "core/plugin/plugin_conf.h"

#include <toml++/toml.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "core/base/units.h"

namespace torii {

PluginConf *PluginConfStore::get(const toml::table *table, const std::string &plugin) {
    auto it = by_table.find(table);
    if (it != by_table.end()) return it->second;
    confs.push_back(PluginConf{table, plugin, this, false, {}});
    by_table[table] = &confs.back();
    return &confs.back();
}

const toml::table *empty_table() {
    static const toml::table empty;
    return &empty;
}

std::string node_position(const toml::node &node) {
    const toml::source_region &src = node.source();
    std::string file = src.path ? *src.path : std::string("<config>");
    return file + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

static const PluginConf *as_conf(const torii_conf_t *c) {
    return reinterpret_cast<const PluginConf *>(c);
}

static std::string region_position(const toml::source_region &src) {
    if (src.begin.line == 0) return "<config>";
    std::string file = src.path ? *src.path : std::string("<config>");
    return file + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

// Errors point at the key when there is one (as the core's own config errors do), else at
// the node, else at the table.
static void record(const PluginConf *conf, const toml::node *at, const std::string &msg,
                   std::string_view key = {}) {
    std::string pos;
    if (!key.empty()) {
        auto it = conf->table->find(key);
        if (it != conf->table->end() && it->first.source().begin.line != 0)
            pos = region_position(it->first.source());
    }
    if (pos.empty()) pos = region_position(at ? at->source() : conf->table->source());
    conf->store->errors.push_back(pos + ": plugin \"" + conf->plugin + "\": " + msg);
}

static const toml::node *lookup(const PluginConf *conf, const char *key) {
    return key ? conf->table->get(key) : nullptr;
}

static int wrong_type(const PluginConf *conf, const char *key, const toml::node *n,
                      const char *expected) {
    record(conf, n, std::string(key) + ": expected " + expected, key);
    return TORII_EINVAL;
}

static int conf_string(const torii_conf_t *c, const char *key, torii_str_t *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    const auto *s = n->as_string();
    if (!s) return wrong_type(conf, key, n, "a string");
    const std::string &v = s->get();
    *out = {v.data(), v.size()};
    return TORII_OK;
}

static int conf_int(const torii_conf_t *c, const char *key, int64_t *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    const auto *v = n->as_integer();
    if (!v) return wrong_type(conf, key, n, "an integer");
    *out = v->get();
    return TORII_OK;
}

static int conf_float(const torii_conf_t *c, const char *key, double *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    if (const auto *f = n->as_floating_point())
        *out = f->get();
    else if (const auto *i = n->as_integer())
        *out = static_cast<double>(i->get());
    else
        return wrong_type(conf, key, n, "a number");
    return TORII_OK;
}

static int conf_bool(const torii_conf_t *c, const char *key, int *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    const auto *b = n->as_boolean();
    if (!b) return wrong_type(conf, key, n, "true or false");
    *out = b->get() ? 1 : 0;
    return TORII_OK;
}

static int conf_duration_ms(const torii_conf_t *c, const char *key, int64_t *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    const auto *s = n->as_string();
    if (!s) return wrong_type(conf, key, n, "a duration string such as \"250ms\", \"2s\", \"1m\"");
    auto d = parse_duration(s->get());
    if (!d) {
        record(conf, n, std::string(key) + ": " + d.error(), key);
        return TORII_EINVAL;
    }
    *out = d.value();
    return TORII_OK;
}

static int conf_size(const torii_conf_t *c, const char *key, uint64_t *out) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return TORII_NOT_FOUND;
    if (const auto *i = n->as_integer()) {
        if (i->get() < 0) return wrong_type(conf, key, n, "a size such as \"8k\" or \"1m\"");
        *out = static_cast<uint64_t>(i->get());
        return TORII_OK;
    }
    const auto *s = n->as_string();
    if (!s) return wrong_type(conf, key, n, "a size such as \"8k\" or \"1m\"");
    auto v = parse_size(s->get());
    if (!v) {
        record(conf, n, std::string(key) + ": " + v.error(), key);
        return TORII_EINVAL;
    }
    *out = v.value();
    return TORII_OK;
}

static const torii_conf_t *conf_table(const torii_conf_t *c, const char *key) {
    const PluginConf *conf = as_conf(c);
    const toml::node *n = lookup(conf, key);
    if (!n) return nullptr;
    const toml::table *t = n->as_table();
    if (!t) {
        wrong_type(conf, key, n, "a table");
        return nullptr;
    }
    return reinterpret_cast<const torii_conf_t *>(conf->store->get(t, conf->plugin));
}

static const toml::array *array_of(const PluginConf *conf, const char *key) {
    const toml::node *n = lookup(conf, key);
    if (!n) return nullptr;
    const toml::array *a = n->as_array();
    if (!a) wrong_type(conf, key, n, "an array");
    return a;
}

static size_t conf_array_size(const torii_conf_t *c, const char *key) {
    const toml::array *a = array_of(as_conf(c), key);
    return a ? a->size() : 0;
}

static int conf_array_string(const torii_conf_t *c, const char *key, size_t i, torii_str_t *out) {
    const PluginConf *conf = as_conf(c);
    const toml::array *a = array_of(conf, key);
    if (!a || i >= a->size()) return TORII_NOT_FOUND;
    const auto *s = (*a)[i].as_string();
    if (!s) {
        record(conf, &(*a)[i], std::string(key) + "[" + std::to_string(i) + "]: expected a string");
        return TORII_EINVAL;
    }
    *out = {s->get().data(), s->get().size()};
    return TORII_OK;
}

static int conf_array_type(const torii_conf_t *c, const char *key, size_t i) {
    const toml::array *a = array_of(as_conf(c), key);
    if (!a || i >= a->size()) return 0;
    switch ((*a)[i].type()) {
        case toml::node_type::string:
            return TORII_CONF_STRING;
        case toml::node_type::integer:
            return TORII_CONF_INT;
        case toml::node_type::floating_point:
            return TORII_CONF_FLOAT;
        case toml::node_type::boolean:
            return TORII_CONF_BOOL;
        case toml::node_type::table:
            return TORII_CONF_TABLE;
        case toml::node_type::array:
            return TORII_CONF_ARRAY;
        default:
            return TORII_CONF_OTHER;
    }
}

// conf_array_int/_float/_bool: element i as T, or a recorded error naming its place.
template <class T, class Out>
static int array_element(const torii_conf_t *c, const char *key, size_t i, Out *out,
                         const char *expected) {
    const PluginConf *conf = as_conf(c);
    const toml::array *a = array_of(conf, key);
    if (!a || i >= a->size()) return TORII_NOT_FOUND;
    const auto *v = (*a)[i].as<T>();
    if (!v) {
        record(conf, &(*a)[i],
               std::string(key) + "[" + std::to_string(i) + "]: expected " + expected);
        return TORII_EINVAL;
    }
    *out = static_cast<Out>(v->get());
    return TORII_OK;
}

static int conf_array_int(const torii_conf_t *c, const char *key, size_t i, int64_t *out) {
    return array_element<int64_t>(c, key, i, out, "an integer");
}

static int conf_array_float(const torii_conf_t *c, const char *key, size_t i, double *out) {
    const PluginConf *conf = as_conf(c);
    const toml::array *a = array_of(conf, key);
    if (a && i < a->size() && (*a)[i].is_integer()) {  // 2 is a fine float, as in conf_float
        *out = static_cast<double>((*a)[i].as_integer()->get());
        return TORII_OK;
    }
    return array_element<double>(c, key, i, out, "a number");
}

static int conf_array_bool(const torii_conf_t *c, const char *key, size_t i, int *out) {
    return array_element<bool>(c, key, i, out, "true or false");
}

static const torii_conf_t *conf_array_table(const torii_conf_t *c, const char *key, size_t i) {
    const PluginConf *conf = as_conf(c);
    const toml::array *a = array_of(conf, key);
    if (!a || i >= a->size()) return nullptr;
    const toml::table *t = (*a)[i].as_table();
    if (!t) {
        record(conf, &(*a)[i], std::string(key) + "[" + std::to_string(i) + "]: expected a table");
        return nullptr;
    }
    return reinterpret_cast<const torii_conf_t *>(conf->store->get(t, conf->plugin));
}

static int conf_key_at(const torii_conf_t *c, size_t i, torii_str_t *out) {
    const PluginConf *conf = as_conf(c);
    size_t k = 0;
    for (auto &&[key, node] : *conf->table) {
        (void)node;
        if (k++ == i) {
            *out = {key.str().data(), key.str().size()};
            return TORII_OK;
        }
    }
    return TORII_NOT_FOUND;
}

static int conf_error(const torii_conf_t *c, const char *key, const char *fmt, ...) {
    const PluginConf *conf = as_conf(c);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const toml::node *n = lookup(conf, key);
    record(conf, n, key && n ? std::string(key) + ": " + msg : std::string(msg),
           key && n ? std::string_view(key) : std::string_view());
    return TORII_EINVAL;
}

static int conf_allow_only(const torii_conf_t *c, const char *const *keys) {
    const PluginConf *conf = as_conf(c);
    int rc = TORII_OK;
    for (auto &&[key, node] : *conf->table) {
        bool known = false;
        for (const char *const *k = keys; *k; ++k)
            if (key.str() == *k) known = true;
        if (!known) {
            record(conf, &node, "unknown key \"" + std::string(key.str()) + "\"", key.str());
            rc = TORII_EINVAL;
        }
    }
    return rc;
}

void fill_conf_api(torii_host_t *host) {
    host->conf_string = conf_string;
    host->conf_int = conf_int;
    host->conf_float = conf_float;
    host->conf_bool = conf_bool;
    host->conf_duration_ms = conf_duration_ms;
    host->conf_size = conf_size;
    host->conf_table = conf_table;
    host->conf_array_size = conf_array_size;
    host->conf_array_string = conf_array_string;
    host->conf_array_table = conf_array_table;
    host->conf_key_at = conf_key_at;
    host->conf_error = conf_error;
    host->conf_allow_only = conf_allow_only;
    host->conf_is_tcp_server = [](const torii_conf_t *c) { return as_conf(c)->tcp_server ? 1 : 0; };
    host->conf_array_type = conf_array_type;
    host->conf_array_int = conf_array_int;
    host->conf_array_float = conf_array_float;
    host->conf_array_bool = conf_array_bool;
    host->conf_dir = [](const torii_conf_t *c) {
        const std::string &dir = as_conf(c)->store->dir;
        return torii_str_t{dir.data(), dir.size()};
    };
    host->conf_scope = [](const torii_conf_t *c, torii_str_t *out) {
        const std::string &scope = as_conf(c)->scope;
        if (scope.empty()) return TORII_NOT_FOUND;
        *out = {scope.data(), scope.size()};
        return TORII_OK;
    };
}

}  // namespace torii
