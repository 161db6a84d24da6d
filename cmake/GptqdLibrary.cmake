# gptqd_library(NAME DIR SOURCES...): one layer of gptqd as a static library whose headers are
# reachable only by the targets that link it.
#
# Every header is included by its path from the repository root ("io/checkpoint/checkpoint.h").
# No target gets the repository root as an include directory. Instead each library publishes an
# include "view": a directory in the build tree holding one symbolic link, DIR -> the library's
# source folder. A target's include path is therefore its own view plus the views of the
# libraries it links (PUBLIC usage requirements are transitive), so including a header of a
# library the target does not link fails to compile ("No such file or directory"): the build
# enforces the layering of docs/architecture.md.
function(gptqd_include_view target dir)
  set(view "${PROJECT_BINARY_DIR}/include-views/${target}")
  get_filename_component(parent "${view}/${dir}" DIRECTORY)
  file(MAKE_DIRECTORY "${parent}")
  if(NOT EXISTS "${view}/${dir}")
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/${dir}" "${view}/${dir}" SYMBOLIC)
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE "${view}")
  else()
    target_include_directories(${target} PUBLIC "${view}")
  endif()
endfunction()

function(gptqd_library name dir)
  add_library(${name} STATIC ${ARGN})
  gptqd_include_view(${name} ${dir})
  target_link_libraries(${name} PRIVATE gptqd_warnings)
endfunction()
