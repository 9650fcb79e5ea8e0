#pragma once
// Errors. User mistakes (bad shapes, dtypes, devices) throw mg::Error with a message that names
// the op and the shapes; broken internal invariants throw mg::InternalError with file and line.
// Nothing in the library aborts on user input.
#include <cstdio>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(message) {}
};

// A device ran out of memory. The message says what was asked for and what is in use.
class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message) : Error(message) {}
};

// Concatenates anything that has an operator<< into one string: str("a=", 3, " b=", shape).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// A program's main in one line, `int main() { return mg::run_main(lesson); }`: runs body() and
// returns its exit code; an exception that escapes it (mg::Error for a user mistake, or any
// other) ends the program with one line "error: <what>" on stderr and exit code 1, never with
// std::terminate's abort. What the program printed so far is flushed first.
template <class Body>
int run_main(Body&& body) noexcept {
  std::string what;
  try {
    return body();
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an unknown exception";
  }
  for (char& c : what)
    if (c == '\n') c = ' ';  // one line, whatever the message holds
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

}  // namespace mg

// MG_CHECK(cond, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied")
#define MG_CHECK(cond, ...)                               \
  do {                                                    \
    if (!(cond)) throw ::mg::Error(::mg::str(__VA_ARGS__)); \
  } while (0)

// Internal invariant: a failure is a bug in mambagrad, not in the caller's code.
#define MG_ASSERT(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond))                                                                              \
      throw ::mg::InternalError(::mg::str(__FILE__, ":", __LINE__, ": internal check failed: ", \
                                          #cond " " __VA_OPT__(, ) __VA_ARGS__));             \
  } while (0)
