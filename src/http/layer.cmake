# src/http/layer.cmake - the HTTP layer (parser, PKI; later the request
# queue) as its own libraries, tacio_http (shared) and tacio_http_static, so
# that programs using only the core never link OpenSSL. Included by the
# top-level CMakeLists.txt after tacio_obj, tacio and tacio_static exist.
find_package(OpenSSL 3.0 REQUIRED)

file(GLOB TACIO_HTTP_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)

add_library(tacio_http_obj OBJECT ${TACIO_HTTP_SOURCES})
set_target_properties(tacio_http_obj PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
target_include_directories(tacio_http_obj PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(tacio_http_obj PUBLIC OpenSSL::SSL OpenSSL::Crypto)

# Exports follow the core's rule (TACIO_EXTERN + tacio.map); nothing is
# public yet: the request queue (include/tacio/http.h) will be.
add_library(tacio_http SHARED $<TARGET_OBJECTS:tacio_http_obj>)
target_include_directories(tacio_http PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(tacio_http PUBLIC tacio PRIVATE OpenSSL::SSL OpenSSL::Crypto)
target_link_options(tacio_http PRIVATE "-Wl,--version-script=${PROJECT_SOURCE_DIR}/src/tacio.map")
set_target_properties(tacio_http PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION 0
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/src/tacio.map)

# Tests and tools link the static one, which reaches the internal tacio__
# functions (src/ is on its include path).
add_library(tacio_http_static STATIC $<TARGET_OBJECTS:tacio_http_obj>)
set_target_properties(tacio_http_static PROPERTIES OUTPUT_NAME tacio_http)
target_include_directories(tacio_http_static PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(tacio_http_static PUBLIC tacio_static OpenSSL::SSL OpenSSL::Crypto)

install(TARGETS tacio_http tacio_http_static
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
