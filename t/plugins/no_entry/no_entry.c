/* Test plugin: a shared object without torii_plugin_entry, which torii must refuse. */
#include <torii/plugin.h>

TORII_EXPORT int not_a_torii_plugin(void) { return 42; }
