# The out-of-process symboliser (tools/symbolize.c) that gmp-schedtrace
# uses to name code addresses of another process, static functions
# included: a static library over libelf, and its test.
# Included from the top CMakeLists.txt.

find_library(ELF_LIB elf)
find_path(ELF_INC libelf.h)
if(NOT ELF_LIB OR NOT ELF_INC)
  message(FATAL_ERROR "libelf not found: apt-get install libelf-dev")
endif()

add_library(gmpsym STATIC ${CMAKE_SOURCE_DIR}/tools/symbolize.c)
target_include_directories(gmpsym PUBLIC ${CMAKE_SOURCE_DIR} PRIVATE ${ELF_INC})
target_compile_options(gmpsym PRIVATE -Wall -Wextra -Wno-unused-parameter -Wshadow
  -Wstrict-prototypes)
target_link_libraries(gmpsym PUBLIC ${ELF_LIB})

if(GMP_BUILD_TESTS)
  add_executable(symbolize_test ${CMAKE_SOURCE_DIR}/tests/tools/symbolize_test.c)
  target_compile_options(symbolize_test PRIVATE -Wall -Wextra -Wno-unused-parameter
    -Wshadow -Wstrict-prototypes)
  target_link_libraries(symbolize_test PRIVATE gmpsym ${CMAKE_DL_LIBS})
  set_target_properties(symbolize_test PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
  # add_test is ignored without enable_testing() in this directory; calling
  # it again is harmless, and lets this file be included anywhere.
  enable_testing()
  add_test(NAME tools.symbolize
    COMMAND ${CMAKE_SOURCE_DIR}/tests/tools/symbolize.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(tools.symbolize PROPERTIES LABELS tools TIMEOUT 60)
endif()
