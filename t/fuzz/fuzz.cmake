# Included by CMakeLists.txt when TORII_FUZZ=ON (make fuzz): one libFuzzer executable per
# t/fuzz/<name>_fuzz.cc, linked with the instrumented torii_core, and the plugins the
# targets load (header_rewrite for rewrite, auth for jwt, round_robin, the default balancer,
# for config), built with the same instrumentation.
set(TORII_FUZZ_PLUGIN_DIR ${CMAKE_BINARY_DIR}/plugins)
set(TORII_FUZZ_PLUGIN_LIBS_header_rewrite PkgConfig::PCRE2)
set(TORII_FUZZ_PLUGIN_LIBS_auth PkgConfig::OPENSSL PkgConfig::JANSSON)
# Helpers of plugins/common/ a plugin compiles in, as TORII_PLUGIN_COMMON_<name> in CMakeLists.txt.
set(TORII_FUZZ_PLUGIN_COMMON_auth conf.c)
set(TORII_FUZZ_PLUGINS)
foreach(name header_rewrite auth round_robin)
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/plugins/${name}/*.c)
  set(common ${TORII_FUZZ_PLUGIN_COMMON_${name}})
  list(TRANSFORM common PREPEND ${PROJECT_SOURCE_DIR}/plugins/common/)
  add_library(fuzz_plugin_${name} MODULE ${sources} ${common})
  set_target_properties(fuzz_plugin_${name} PROPERTIES OUTPUT_NAME ${name} PREFIX ""
                        C_VISIBILITY_PRESET hidden LIBRARY_OUTPUT_DIRECTORY ${TORII_FUZZ_PLUGIN_DIR}
                        UNITY_BUILD OFF)
  target_include_directories(fuzz_plugin_${name} PRIVATE ${PROJECT_SOURCE_DIR}/include
                                                          ${PROJECT_SOURCE_DIR}/plugins)
  target_compile_options(fuzz_plugin_${name} PRIVATE ${TORII_WARNINGS} -std=c11)
  target_link_libraries(fuzz_plugin_${name} PRIVATE ${TORII_FUZZ_PLUGIN_LIBS_${name}})
  list(APPEND TORII_FUZZ_PLUGINS fuzz_plugin_${name})
endforeach()

file(GLOB TORII_FUZZ_TARGETS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/t/fuzz/*_fuzz.cc)
foreach(src ${TORII_FUZZ_TARGETS})
  get_filename_component(exe ${src} NAME_WE)  # http1_request_fuzz
  string(REGEX REPLACE "_fuzz$" "" name ${exe})
  add_executable(${exe} ${src} ${PROJECT_SOURCE_DIR}/t/fuzz/libfuzzer_main.cc)
  target_compile_options(${exe} PRIVATE ${TORII_WARNINGS})
  target_compile_definitions(${exe} PRIVATE TORII_FUZZ_ENTRY=torii_fuzz_${name}
                             TORII_FUZZ_PLUGIN_DIR="${TORII_FUZZ_PLUGIN_DIR}")
  target_link_options(${exe} PRIVATE -fsanitize=fuzzer -Wl,--wrap=getaddrinfo)
  target_link_libraries(${exe} PRIVATE torii_core)
  add_dependencies(${exe} ${TORII_FUZZ_PLUGINS})
endforeach()
