// Versions torii reports with -v and in /status.
#pragma once

// The plugin ABI's version is the header's, so the two cannot disagree.
#include <torii/plugin.h>
