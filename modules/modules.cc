// The list of compiled-in modules. A new protocol or service module is added here, once.
#include "core/module/module.h"

namespace torii {

const std::vector<const Module *> &modules() {
    static const std::vector<const Module *> list = {&http1_module, &http2_module, &stream_module,
                                                     &admin_module};
    return list;
}

const Module *codec_for_alpn(std::string_view alpn) {
    for (const Module *m : modules())
        if (m->alpn && m->accept && alpn == m->alpn) return m;
    return nullptr;
}

}  // namespace torii
