# Small helpers shared by the project's CMakeLists.

function(mg_set_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  if(MG_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
endfunction()

# add_project_test(<name> <sources>...): a GoogleTest executable registered with CTest.
function(add_project_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mambagrad GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${name} PRIVATE MG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")  # test::source_path()
  mg_set_warnings(${name})
  gtest_discover_tests(${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} DISCOVERY_TIMEOUT 60
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
endfunction()

# add_project_bench(<name> <sources>...): a Google Benchmark executable (not run by CTest).
function(add_project_bench name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mambagrad benchmark::benchmark)
  mg_set_warnings(${name})
endfunction()
