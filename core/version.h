// Versions torii reports with -v and in /status.
#pragma once

#define TORII_PLUGIN_ABI_MAJOR 1
#define TORII_PLUGIN_ABI_MINOR 0
