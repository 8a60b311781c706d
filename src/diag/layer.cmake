# src/diag/layer.cmake - fault records, first-chance capture (docs/diagnostics.md).
# Included by the top-level CMakeLists.txt after tacio_obj, tacio and
# tacio_static exist. libdw symbolises stacks (outside signal handlers);
# libsystemd sends records to the journal.
pkg_check_modules(DW REQUIRED IMPORTED_TARGET libdw)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

set(TACIO_DIAG_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/util.c
  ${CMAKE_CURRENT_LIST_DIR}/modules.c
  ${CMAKE_CURRENT_LIST_DIR}/symbolize.c
  ${CMAKE_CURRENT_LIST_DIR}/record.c
  ${CMAKE_CURRENT_LIST_DIR}/coredump.c
  ${CMAKE_CURRENT_LIST_DIR}/handler.c
  ${CMAKE_CURRENT_LIST_DIR}/capture.c)
target_sources(tacio_obj PRIVATE ${TACIO_DIAG_SOURCES})
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/record.c PROPERTIES
  COMPILE_DEFINITIONS "TACIO_VERSION_STRING=\"${PROJECT_VERSION}\"")
target_link_libraries(tacio_obj PRIVATE PkgConfig::DW PkgConfig::SYSTEMD)
target_link_libraries(tacio PRIVATE PkgConfig::DW PkgConfig::SYSTEMD)
target_link_libraries(tacio_static PUBLIC PkgConfig::DW PkgConfig::SYSTEMD)
