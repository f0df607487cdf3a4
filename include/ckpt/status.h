// Errors as values. Everything below the CLI returns Status or Result<T>; the CLI maps
// them to exit codes in one place (src/cli/exit_codes.cpp).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ckpt {

enum class Errc {
  kOk = 0,
  kInvalidArgument,   // the user asked for something malformed (exit 2)
  kNotConfigured,     // no previous checkpoint configured (exit 3)
  kNoCheckpoint,      // configured, but nothing is there (exit 4)
  kCorrupt,           // present but incomplete, truncated or altered (exit 5)
  kNotFound,          // a named file or object is missing (exit 1)
  kIo,                // local I/O failure (exit 1)
  kNoSpace,           // ENOSPC / quota (exit 1)
  kPermissionDenied,  // EACCES, 403 (exit 1)
  kUnsupported,       // a scheme or format we do not handle (exit 1)
  kTimeout,           // a remote stopped answering (exit 1)
  kUnavailable,       // retryable remote failure that exhausted its retries (exit 1)
  kFailedPrecondition,  // the state does not allow the operation (exit 1)
  kInternal,          // a bug (exit 1)
  kPending,           // `wait` timed out with saves still queued or uploading (exit 6)
};

std::string_view errc_name(Errc code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  bool ok() const { return code_ == Errc::kOk; }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message", keeping the code.
  Status with_context(std::string_view context) const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

// Builds a Status from errno with the failing operation and path in the message.
Status errno_status(int err, std::string_view what, std::string_view path);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ckpt

#define CKPT_CONCAT_INNER(a, b) a##b
#define CKPT_CONCAT(a, b) CKPT_CONCAT_INNER(a, b)

#define CKPT_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::ckpt::Status _st = (expr);          \
    if (!_st.ok()) return _st;            \
  } while (0)

#define CKPT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define CKPT_ASSIGN_OR_RETURN(lhs, expr) \
  CKPT_ASSIGN_OR_RETURN_IMPL(CKPT_CONCAT(_res_, __LINE__), lhs, expr)
